"""One error type for everything the environment can get wrong.

Each error names the problem and the fix in one message, because the person reading it
is usually a newcomer who just ran `make test` on a fresh machine.
"""


class TestbedError(RuntimeError):
    """A problem with the environment, stated with the way to fix it."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}\n  fix: {fix}")
        self.problem = problem
        self.fix = fix
