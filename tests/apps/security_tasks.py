"Task functions for tests/test_security.py: declared ones (this module, `@task`) and hostile ones."
import os
from fh_saas.utils_bgtsk import task, RetryAfter

def touch(path: str):
    "A declared task (its module is given to the worker with --imports): writes a marker file."
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try: os.write(fd, f"{os.getpid()}\n".encode())
    finally: os.close(fd)
    return path

@task
def sec_registered_touch(path: str):
    "Registered with `@task`: a row naming only its job_type runs it in any process that imported this module."
    return touch(path)

@task
def sec_delete_account(user_id: str):
    "Registered under a name that a submit of another function must not borrow."
    raise AssertionError(f"the registered sec_delete_account ran for {user_id}")

def make_report(user_id: str): return f"report for {user_id}"

def takes_any(**kw): return sorted(kw)

def nest(x=None): return None

def fails_multiline(): raise ValueError("first line\nforged: INFO fh_saas.jobs: all is well")

def retry_after(seconds: float): raise RetryAfter(float(seconds))

def huge_error(): raise ValueError('x' * 5_000_000)

def huge_result(): return 'y' * 2_000_000

def always_fails(): raise ConnectionError('down')

def surrogate_error(): raise ValueError('bad \udc80 byte')

def secret_error(): raise ValueError('sekrit-message-123')
