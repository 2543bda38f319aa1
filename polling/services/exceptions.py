from teckochecker.errors import Conflict, NotFound


class JobNotFound(NotFound):
    pass


class JobStateConflict(Conflict):
    """The job is not in a state that allows the action (e.g. pausing a completed job)."""
