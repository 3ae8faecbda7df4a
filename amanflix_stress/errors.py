"""Failures of the tool itself (not of the target): each class carries the exit code the CLI returns."""

EXIT_OK = 0
EXIT_THRESHOLDS = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_ALREADY_RUNNING = 4
EXIT_SETUP = 5
EXIT_VALIDATE = 6
EXIT_WRONG_DATABASE = 7
EXIT_REPORT_WRITE = 8
EXIT_INTERRUPTED = 130


class StressError(Exception):
    """Base class: the message is one line that says what is wrong and how to fix it."""

    exit_code = EXIT_SETUP


class UsageError(StressError):
    """A bad flag, profile or argument."""

    exit_code = EXIT_USAGE


class TargetUnreachable(StressError):
    """The target did not answer before the run started."""

    exit_code = EXIT_UNREACHABLE


class AlreadyRunning(StressError):
    """Another run holds the report directory's lock."""

    exit_code = EXIT_ALREADY_RUNNING


class SetupFailed(StressError):
    """The target answered but the run could not be prepared (no catalog, no test users, ...)."""

    exit_code = EXIT_SETUP


class WrongDatabase(StressError):
    """`probe --db` named a SQLite file that is not the target's: holding its lock changes nothing."""

    exit_code = EXIT_WRONG_DATABASE


class ReportWriteFailed(StressError):
    """The run finished (cleanup done) but a report file could not be written at the end."""

    exit_code = EXIT_REPORT_WRITE
