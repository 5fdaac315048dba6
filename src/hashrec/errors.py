"""One family of errors: the CLI prints their message and exits 1, the server answers 422."""


class HashrecError(Exception):
    """Base of every error hashrec raises on purpose; its message says what to do."""


class DataError(HashrecError, ValueError):
    """Input data is malformed: the message names the file, the line and the fix."""


class ConfigError(HashrecError, ValueError):
    """A hyperparameter or option is unknown or has the wrong type or range."""


class NotFittedError(HashrecError, RuntimeError):
    """A recommender was used before `fit` (sklearn's wording)."""


class ModelFileError(HashrecError):
    """A saved model directory is missing, corrupted, of another version or unsafe."""


class OutputError(HashrecError):
    """An output path is a file, a folder hashrec did not make, or cannot be written."""
