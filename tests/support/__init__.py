"""Code the tests share: task modules that job processes import, helpers, fake commands.

Job processes inherit the test's import path (`sys.path` as `PYTHONPATH`), so the modules
here are importable there as `support.<module>`, as they are in the test process.
"""
