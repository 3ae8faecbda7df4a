"""The deterministic demo catalog (movies, shows, seasons, episodes) and its in-process, read-only cache."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, insert, select

from . import schema

GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Comedy",
    "Crime",
    "Drama",
    "Family",
    "Fantasy",
    "Horror",
    "Mystery",
    "Romance",
    "Science Fiction",
    "Thriller",
]
WORDS_A = ["Silent", "Crimson", "Hidden", "Last", "Broken", "Golden", "Midnight", "Frozen", "Distant", "Wild"]
WORDS_B = [
    "Harbor",
    "Empire",
    "Signal",
    "Garden",
    "Horizon",
    "Protocol",
    "Kingdom",
    "River",
    "Machine",
    "Echo",
]
KNOWN_MOVIES = [550, 603, 27205, 13, 680, 155, 862, 11]
KNOWN_SHOWS = [1399, 1396, 66732, 1418]
N_MOVIES, N_SHOWS, NEW_TITLES = 50, 10, 8  # the NEW_TITLES newest titles are < 5 days old at start


def utcnow() -> datetime:
    """Naive UTC now (upstream stores naive UTC datetimes)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def video_id(show_id: int, season: int, episode: int) -> str:
    """Upstream's episode video id: <show_id><season 2 digits><episode 3 digits>."""
    return f"{show_id}{season:02d}{episode:03d}"


def _ids(rng: random.Random, known: list[int], n: int) -> list[int]:
    ids = list(known)
    while len(ids) < n:
        candidate = rng.randint(100, 999_999)
        if candidate not in ids:
            ids.append(candidate)
    return ids


def _title(rng: random.Random, taken: set) -> str:
    while True:
        title = f"The {rng.choice(WORDS_A)} {rng.choice(WORDS_B)}"
        title = title if title not in taken else f"{title} {len(taken) + 2}"
        if title not in taken:
            taken.add(title)
            return title


def _genres(rng: random.Random) -> str:
    return ", ".join(rng.sample(GENRES, rng.randint(1, 3)))


def movie_rows(rng: random.Random, now: datetime, titles: set) -> list[dict]:
    rows = []
    for i, mid in enumerate(_ids(rng, KNOWN_MOVIES, N_MOVIES)):
        added = now - timedelta(hours=12 * i) if i < NEW_TITLES else now - timedelta(days=10 + 3 * i)
        rows.append(
            dict(
                id=mid,
                title=_title(rng, titles),
                overview=f"Overview of movie {mid}.",
                tagline="A sandbox title.",
                release_date=datetime(rng.randint(1970, 2024), rng.randint(1, 12), rng.randint(1, 28)),
                vote_average=round(rng.uniform(4.0, 9.5), 1),
                genres=_genres(rng),
                keywords="sandbox",
                poster_path=f"/p{mid}.jpg",
                backdrop_path=f"/b{mid}.jpg",
                runtime=rng.randint(80, 170),
                spoken_languages="English",
                video_id=str(mid),
                has_subtitles=False,
                production_companies="Sandbox",
                production_countries="US",
                budget=1_000_000 * rng.randint(1, 200),
                revenue=1_000_000 * rng.randint(1, 900),
                status="Released",
                in_production=False,
                added_at=added,
            )
        )
    return rows


def show_rows(rng: random.Random, now: datetime, titles: set) -> tuple[list, list, list]:
    shows: list[dict] = []
    seasons: list[dict] = []
    episodes: list[dict] = []
    for i, sid in enumerate(_ids(rng, KNOWN_SHOWS, N_SHOWS)):
        added = now - timedelta(hours=12 * i + 6) if i < 3 else now - timedelta(days=12 + 4 * i)
        shows.append(
            dict(
                show_id=sid,
                title=_title(rng, titles),
                genres=_genres(rng),
                created_by="Sandbox Writers",
                overview=f"Overview of show {sid}.",
                poster_path=f"/p{sid}.jpg",
                backdrop_path=f"/b{sid}.jpg",
                vote_average=round(rng.uniform(5.0, 9.5), 1),
                tagline="A sandbox show.",
                spoken_languages="English",
                first_air_date=datetime(2010 + i, 1, 1),
                last_air_date=datetime(2012 + i, 6, 1),
                production_companies="Sandbox",
                production_countries="US",
                networks="SBX",
                status="Ended",
                added_at=added,
            )
        )
        for s in range(1, rng.randint(1, 3) + 1):
            season_pk = len(seasons) + 1
            seasons.append(dict(id=season_pk, season_number=s, tvshow_id=sid))
            for e in range(1, rng.randint(2, 6) + 1):
                episodes.append(
                    dict(
                        season_id=season_pk,
                        episode_number=e,
                        episode_number_end=None,
                        title=f"Episode {e}",
                        overview=f"S{s}E{e} of show {sid}.",
                        has_subtitles=False,
                        video_id=video_id(sid, s, e),
                        runtime=rng.randint(22, 60),
                    )
                )
    return shows, seasons, episodes


def seed(engine, seed_value: int = 1399) -> bool:
    """Insert the catalog unless the movie table already has rows. Returns True if it seeded."""
    with engine.begin() as conn:
        if conn.execute(select(func.count()).select_from(schema.movie)).scalar_one():
            return False
        rng, now = random.Random(seed_value), utcnow()
        titles: set[str] = set()
        conn.execute(insert(schema.movie), movie_rows(rng, now, titles))
        shows, seasons, episodes = show_rows(rng, now, titles)
        conn.execute(insert(schema.tvshow), shows)
        conn.execute(insert(schema.season), seasons)
        conn.execute(insert(schema.episode), episodes)
    return True


def iso(value) -> str | None:
    """Content/watch-history dates: ISO-8601 without zone."""
    return value.isoformat() if value is not None else None


class Catalog:
    """Read-only copy of the content tables, serialised once (upstream serves browse from a 12 h cache)."""

    def __init__(self, movies: list[dict], shows: list[dict]):
        self.movies, self.shows = movies, shows
        self.movie_by_id = {m["id"]: m for m in movies}
        self.show_by_id = {s["show_id"]: s for s in shows}

    @classmethod
    def load(cls, engine) -> Catalog:
        with engine.connect() as conn:
            movie_records = conn.execute(select(schema.movie).order_by(schema.movie.c.id)).mappings().all()
            show_records = (
                conn.execute(select(schema.tvshow).order_by(schema.tvshow.c.show_id)).mappings().all()
            )
            movies, shows = [movie_json(r) for r in movie_records], [show_json(r, conn) for r in show_records]
        return cls(movies, shows)

    def episodes(self, show_id: int) -> list[dict]:
        """The show's episodes in viewing order, each with its season_number."""
        show = self.show_by_id.get(show_id)
        if show is None:
            return []
        return [dict(ep, season_number=s["season_number"]) for s in show["seasons"] for ep in s["episodes"]]

    def episode(self, show_id: int, season: int | None, number: int | None) -> dict | None:
        for ep in self.episodes(show_id):
            if ep["season_number"] == season and ep["episode_number"] == number:
                return ep
        return None

    def next_episode(self, show_id: int, season, number) -> dict | None:
        """The episode after (season, number), or None at the end of the show."""
        eps = self.episodes(show_id)
        for i, ep in enumerate(eps):
            if ep["season_number"] == season and ep["episode_number"] == number:
                return eps[i + 1] if i + 1 < len(eps) else None
        return None

    def content(self, content_type: str, content_id: int) -> dict | None:
        table = self.movie_by_id if content_type == "movie" else self.show_by_id
        return table.get(content_id)


def movie_json(row) -> dict:
    data = {k: row[k] for k in row}
    data.update(release_date=iso(row["release_date"]), added_at=iso(row["added_at"]), media_type="movie")
    return data


def show_json(row, conn) -> dict:
    data = {k: row[k] for k in row}
    data.update(
        first_air_date=iso(row["first_air_date"]),
        last_air_date=iso(row["last_air_date"]),
        added_at=iso(row["added_at"]),
        media_type="tv",
        seasons=_seasons(conn, row["show_id"]),
    )
    return data


def _seasons(conn, show_id: int) -> list[dict]:
    seasons = (
        conn.execute(
            select(schema.season)
            .where(schema.season.c.tvshow_id == show_id)
            .order_by(schema.season.c.season_number)
        )
        .mappings()
        .all()
    )
    result = []
    for s in seasons:
        eps = (
            conn.execute(
                select(schema.episode)
                .where(schema.episode.c.season_id == s["id"])
                .order_by(schema.episode.c.episode_number)
            )
            .mappings()
            .all()
        )
        keys = (
            "episode_number",
            "episode_number_end",
            "title",
            "overview",
            "has_subtitles",
            "video_id",
            "runtime",
        )
        result.append(
            {
                "season_number": s["season_number"],
                "tvshow_id": show_id,
                "episodes": [{k: e[k] for k in keys} for e in eps],
            }
        )
    return result
