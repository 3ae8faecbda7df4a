"""The target's real catalog, fetched once with a token: movies by `id`, shows by `show_id` with episodes."""

from __future__ import annotations

from amanflix_stress.amanflix.api import AmanflixApi
from amanflix_stress.errors import SetupFailed

PAGE_SIZE = 50
MAX_PAGES = 40  # 2,000 titles of each kind are plenty to spread the load; a bound on setup time
DEFAULT_RUNTIME_S = 45 * 60


class CatalogUnreadable(SetupFailed):
    """The content endpoints did not answer with a list: worth a retry, unlike an empty catalog."""


def fetch_catalog_retrying(api: AmanflixApi, retries: int) -> tuple[dict, int]:
    """The catalog and how many retries it took; setup calls may retry, measured ones never do."""
    attempt = 0
    while True:
        try:
            return fetch_catalog(api), attempt
        except CatalogUnreadable:
            if attempt >= retries:
                raise
            attempt += 1


def fetch_catalog(api: AmanflixApi) -> dict:
    """{"movies": [[id, runtime_s]], "episodes": [[show_id, season, episode, runtime_s]]}, or SetupFailed."""
    movies = [
        [m["id"], _runtime_s(m.get("runtime"))] for m in _pages(api.movies) if isinstance(m.get("id"), int)
    ]
    episodes = [episode for show in _pages(api.shows) for episode in _episodes(show)]
    if not movies and not episodes:
        raise SetupFailed(
            f"the target at {api.client.prefix or '/'} has an empty catalog (GET /api/movies and "
            "/api/shows returned nothing): upload movies or shows first, then run again"
        )
    return {"movies": movies, "episodes": episodes}


def _pages(fetch) -> list[dict]:
    items: list[dict] = []
    for page in range(1, MAX_PAGES + 1):
        reply = fetch(page=page, per_page=PAGE_SIZE)
        data = reply.json()
        if reply.status != 200 or not isinstance(data, list):
            raise CatalogUnreadable(
                f"could not read the catalog: {reply.status or reply.error} from the content "
                "endpoints with a fresh token (is this an Amanflix API?)"
            )
        items += [item for item in data if isinstance(item, dict)]
        if len(data) < PAGE_SIZE:
            break
    return items


def _episodes(show: dict) -> list[list[int]]:
    show_id = show.get("show_id")
    if not isinstance(show_id, int):
        return []
    return [
        [show_id, season["season_number"], episode["episode_number"], _runtime_s(episode.get("runtime"))]
        for season in show.get("seasons") or []
        for episode in season.get("episodes") or []
        if isinstance(season.get("season_number"), int) and isinstance(episode.get("episode_number"), int)
    ]


def _runtime_s(minutes) -> int:
    return int(minutes * 60) if isinstance(minutes, (int, float)) and minutes > 0 else DEFAULT_RUNTIME_S
