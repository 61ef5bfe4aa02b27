"""A job queue in a directory, shared by the three programs of
examples/procfile: the API enqueues, the worker runs, the clock enqueues
on a schedule. A directory keeps the example free of a broker; the
programs only meet through it, as they would through Redis or a table."""
