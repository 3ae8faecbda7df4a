"""The sandbox tables (SQLAlchemy Core), shaped like upstream's models."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()
NOW = text("CURRENT_TIMESTAMP")  # UTC, whole seconds: what upstream's DB defaults give


def _user_fk(ondelete: str) -> ForeignKey:
    """FKs are declared everywhere but only enforced in `fixed` mode (PRAGMA foreign_keys=ON)."""
    return ForeignKey("user.id", ondelete=ondelete)


user = Table(
    "user",
    metadata,
    Column("id", Integer, primary_key=True),  # no AUTOINCREMENT: SQLite reuses the highest rowid
    Column("username", String(150), nullable=False),
    Column("email", String(150)),
    Column("password", String(200), nullable=False),
    Column("is_banned", Boolean, default=False),
    Column("ban_reason", String(500)),
    Column("ban_until", DateTime),
    Column("created_at", DateTime, server_default=NOW),
    Column("updated_at", DateTime, server_default=NOW),
)

admin = Table(
    "admin",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(150), nullable=False),
    Column("email", String(150)),
    Column("password", String(200), nullable=False),
    Column("role", String(50), nullable=False),
    Column("created_at", DateTime, server_default=NOW),
)

blacklist_token = Table(
    "blacklist_token",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token", String(500), nullable=False),
    Column("blacklisted_on", DateTime, server_default=NOW),
)

movie = Table(
    "movie",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("title", String(255)),
    Column("overview", Text),
    Column("tagline", String(255)),
    Column("release_date", DateTime),
    Column("vote_average", Float),
    Column("genres", String(255)),
    Column("keywords", Text),
    Column("poster_path", String(255)),
    Column("backdrop_path", String(255)),
    Column("runtime", Integer),
    Column("spoken_languages", String(255)),
    Column("video_id", String(50)),
    Column("has_subtitles", Boolean),
    Column("production_companies", Text),
    Column("production_countries", Text),
    Column("budget", Integer),
    Column("revenue", Integer),
    Column("status", String(50)),
    Column("in_production", Boolean),
    Column("added_at", DateTime),
)

tvshow = Table(
    "tvshow",
    metadata,
    Column("show_id", Integer, primary_key=True, autoincrement=False),
    Column("title", String(255)),
    Column("genres", String(255)),
    Column("created_by", String(255)),
    Column("overview", Text),
    Column("poster_path", String(255)),
    Column("backdrop_path", String(255)),
    Column("vote_average", Float),
    Column("tagline", String(255)),
    Column("spoken_languages", String(255)),
    Column("first_air_date", DateTime),
    Column("last_air_date", DateTime),
    Column("production_companies", Text),
    Column("production_countries", Text),
    Column("networks", Text),
    Column("status", String(50)),
    Column("added_at", DateTime),
)

season = Table(
    "season",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("season_number", Integer, nullable=False),
    Column("tvshow_id", Integer, ForeignKey("tvshow.show_id"), nullable=False),
)

episode = Table(
    "episode",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("season_id", Integer, ForeignKey("season.id"), nullable=False),
    Column("episode_number", Integer, nullable=False),
    Column("episode_number_end", Integer),
    Column("title", String(255)),
    Column("overview", Text),
    Column("has_subtitles", Boolean),
    Column("video_id", String(50)),
    Column("runtime", Integer),
)

watch_history = Table(
    "watch_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, _user_fk("CASCADE"), nullable=False),
    Column("content_type", String(20), nullable=False),
    Column("content_id", Integer, nullable=False),
    Column("watch_timestamp", Float, default=0),
    Column("total_duration", Float, default=0),
    Column("progress_percentage", Float, default=0),
    Column("season_number", Integer),
    Column("episode_number", Integer),
    Column("watched_at", DateTime, server_default=NOW),
    Column("last_watched", DateTime, server_default=NOW),
    Column("is_completed", Boolean, default=False),
)

my_list = Table(
    "my_list",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, _user_fk("CASCADE"), nullable=False),
    Column("content_type", String(20), nullable=False),
    Column("content_id", Integer, nullable=False),
    Column("added_at", DateTime, server_default=NOW),
)

user_session = Table(
    "user_session",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("session_id", String(64), nullable=False),
    Column("user_id", Integer, _user_fk("SET NULL")),
    Column("started_at", DateTime, server_default=NOW),
    Column("last_heartbeat", DateTime, server_default=NOW),
    Column("ended_at", DateTime),
)

notification = Table(
    "notification",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("title", String(255), nullable=False),
    Column("message", Text, nullable=False),
    Column("type", String(50), default="info"),
    Column("user_id", Integer, _user_fk("CASCADE")),
    Column("created_at", DateTime, server_default=NOW),
    Column("is_read", Boolean, default=False),
    Column("link", String(500)),
)

# Only `fixed` mode has it: one row per (user, title[, episode]); NULL season/episode count as equal.
WATCH_HISTORY_KEY = "user_id, content_type, content_id, IFNULL(season_number, -1), IFNULL(episode_number, -1)"
UNIQUE_WATCH_HISTORY = (
    f"CREATE UNIQUE INDEX IF NOT EXISTS ux_watch_history_key ON watch_history ({WATCH_HISTORY_KEY})"
)
