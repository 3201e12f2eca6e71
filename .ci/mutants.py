"""The mutation check: every named one-line breakage of a guard or a promise must make the tests that own it fail.

For each mutant: copy `fh_saas/` and `tests/` to a temporary folder, replace one exact piece of text (it must occur
once), and run the named tests against the copy (`PYTHONPATH` puts it before the installed package; processes the
tests start import it too). A mutant whose tests still pass *survived*: the suite would not notice that breakage,
and this script fails. First the same tests run on the unbroken copy and must pass, so a mutant is never counted as
killed by a test that fails anyway (with `--after-pytest`, as the test command runs it after pytest passed, the tests
of the eight quickest mutants only). One PostgreSQL server serves every run (`$FH_SAAS_TEST_PG`).

    .venv/bin/python .ci/mutants.py            # all; writes bench/results/mutants.md
    .venv/bin/python .ci/mutants.py -k cancel  # the mutants whose name contains 'cancel'
"""
import argparse, os, shutil, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
G, P, S = 'tests/test_guards.py::', 'tests/test_promises.py::', 'tests/test_security.py::'

# (name, file, exact text, replacement, tests that must fail). Tests parametrized over `host` run on both backends.
MUTANTS = [
    ('finish ignores the attempt', 'store.py',
     '''_ENDS + _GUARD + " AND cancel_requested = 0"''',
     '''_ENDS + _GUARD.replace(' AND attempt = :attempt', '') + " AND cancel_requested = 0"''',
     [G + 'test_a_stale_attempt_cannot_finish']),
    ("finish's sticky write ignores the attempt", 'store.py',
     '''_ENDS + _GUARD + " RETURNING status"''', '''_ENDS + _GUARD.replace(' AND attempt = :attempt', '') + " RETURNING status"''',
     [G + 'test_a_stale_attempt_cannot_finish_a_job_whose_cancel_was_asked']),
    ('a finish over a cancel writes its own status', 'store.py',
     '''_ENDS + _GUARD + " AND cancel_requested = 0"''', "_ENDS + _GUARD",
     [G + 'test_cancel_is_sticky_over_a_retry_and_a_finish']),
    ('a grouped finish reports a stale attempt as written (SQLite)', 'store.py',
     "return next((r['status'] for r in q(_FINISH, a)), None)", "return next((r['status'] for r in q(_FINISH, a)), a['status'])",
     [G + 'test_a_stale_attempt_cannot_finish']),
    ('a grouped finish the database refused is taken for a stale attempt (SQLite)', 'store.py',
     "if not fut.done(): fut.set_exception(exc)", "if not fut.done(): fut.set_result(None)",
     [G + 'test_attempts_ending_together_on_a_locked_database_are_each_recorded_once']),
    ("a group of ends written late from a thread is taken for stale attempts (SQLite)", 'store.py',
     "try: ok, written = t.result()", "try: ok, written = True, [None] * len(group)",
     [G + 'test_attempts_ending_together_while_a_short_lock_is_held_are_written_together_from_a_thread']),
    ('grouped finish ignores the attempt (PostgreSQL)', 'pg.py',
     "AND j.attempt = f.attempt RETURNING", "RETURNING", [G + 'test_a_stale_attempt_cannot_finish']),
    ('reschedule ignores the attempt', 'store.py',
     '''"updated_at = :now_s " + _GUARD + " RETURNING status",
        a := dict(_now_row(now), id=job_id, attempt=attempt, run_at=run_at''',
     '''"updated_at = :now_s " + _GUARD.replace(' AND attempt = :attempt', '') + " RETURNING status",
        a := dict(_now_row(now), id=job_id, attempt=attempt, run_at=run_at''',
     [G + 'test_a_stale_attempt_cannot_reschedule_renew_or_release']),
    ('release ignores the attempt', 'store.py',
     '''"lease_until = NULL, worker = NULL, updated_at = :now_s " + _GUARD + " RETURNING status"''',
     '''"lease_until = NULL, worker = NULL, updated_at = :now_s " + _GUARD.replace(' AND attempt = :attempt', '') + " RETURNING status"''',
     [G + 'test_a_stale_attempt_cannot_reschedule_renew_or_release']),
    ('renew ignores the attempt', 'store.py',
     '''updated_at = :now_s " + _GUARD + " RETURNING cancel_requested"''',
     '''updated_at = :now_s " + _GUARD.replace(' AND attempt = :attempt', '') + " RETURNING cancel_requested"''',
     [G + 'test_a_stale_attempt_cannot_reschedule_renew_or_release']),
    ('claim ignores the status', 'store.py',
     "WHERE id = :id AND status = 'pending' AND run_at <= :now", "WHERE id = :id AND run_at <= :now",
     [G + 'test_a_running_job_cannot_be_claimed_again']),
    ('no SKIP LOCKED (PostgreSQL)', 'pg.py',
     "skip_locked = 'postgresql', ' FOR UPDATE SKIP LOCKED'", "skip_locked = 'postgresql', ''",
     [G + 'test_claims_skip_rows_another_claim_has_locked']),
    ("a claim reads every due job and sorts them (SQLite)", 'store.py',
     """due = "status = 'pending' AND +run_at <= :now""", """due = "status = 'pending' AND run_at <= :now""",
     ['tests/test_backlog.py::test_sqlite_claim_work_does_not_grow_with_the_backlog']),
    ("a claim's update reads every pending row", 'store.py',
     """_STILL_PENDING = "(status = 'pending') IS TRUE\"""", """_STILL_PENDING = "status = 'pending'\"""",
     ['tests/test_backlog.py']),
    ('a job handed back wakes nobody (PostgreSQL)', 'store.py',
     "if st == 'pending': self._due_now()", "pass",
     ['tests/test_pg_workers.py::test_a_job_handed_back_at_shutdown_is_taken_by_another_worker_at_once']),
    ("a claim's planner may sort every due job (PostgreSQL)", 'pg.py', "-c enable_sort=off -c enable_seqscan", "-c enable_seqscan",
     ['tests/test_backlog.py::test_pg_claim_reads_only_the_rows_it_takes_whatever_the_statistics']),
    ('a job retried by hand wakes nobody (PostgreSQL)', 'store.py', "    if ok: self._due_now()", "    pass",
     ['tests/test_pg_workers.py::test_a_job_retried_by_hand_is_taken_by_an_idle_worker_at_once']),
    ("a served tenant's first claim makes its connection then (PostgreSQL)", 'pg.py',
     "pool_for(self.conninfo, batch=True); pool_for(self.conninfo, claims=True)", "pool_for(self.conninfo, batch=True)",
     ['tests/test_pg_workers.py::test_a_watched_store_opens_its_claim_connections_before_its_first_claim']),
    ('a new tenant is created without the schema lock (PostgreSQL)', 'pg.py',
     """                with c.transaction():  # one creator at a time: `IF NOT EXISTS` alone races in the catalogs
                    c.execute(_DDL_LOCK, [self.schema])
""", """                if True:
""", ['tests/test_backends.py::test_a_new_tenant_created_by_many_at_once_is_created_without_an_error']),
    ('no NOTIFY on insert (PostgreSQL)', 'pg.py',
     'rows = self._exec(_wake(self.conninfo, f"INSERT', 'rows = self._exec((f"INSERT',
     [G + 'test_an_insert_notifies_and_wakes_an_idle_scheduler']),
    ('retry base: 2, 4, 6 instead of 2, 4, 8', 'jobs.py', 'else base ** retry', 'else base * retry',
     [G + 'test_retries_wait_2_4_8_then_fail']),
    ('retry base: 2, 4, 6 (the property test)', 'jobs.py', 'else base ** retry', 'else base * retry',
     ['tests/test_lifecycle_property.py']),
    ('retry cap off by one', 'jobs.py', 'retry > max_retries: return None', 'retry > max_retries + 1: return None',
     [G + 'test_retries_wait_2_4_8_then_fail', G + 'test_max_retries_zero_means_one_attempt']),
    ('cancel not sticky', 'store.py', '''_STICKY = "CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE {} END"''',
     '_STICKY = "{}"', [G + 'test_cancel_is_sticky_over_a_retry_and_a_finish']),
    ('cancel not sticky in the grouped finish (PostgreSQL)', 'pg.py',
     "CASE WHEN j.cancel_requested = 1 THEN 'cancelled' ", "CASE WHEN 1 = 0 THEN 'cancelled' ",
     [G + 'test_cancel_is_sticky_over_a_retry_and_a_finish']),
    ('a cancel from another process is not looked for', 'runner.py',
     'if ok and (c.id, c.attempt) in asked: c.ask_cancel()', 'pass',
     [G + 'test_a_cancel_asked_elsewhere_stops_a_running_async_task']),
    ('prune ignores its cut-off', 'store.py', '"AND completed_at < :before"', '"AND completed_at IS NOT NULL"',
     [G + 'test_prune_keeps_what_ended_recently']),
    ('a dead holder is never seen', 'jobs.py', "return now == '' or now != p[2]", 'return False',
     [G + 'test_a_dead_holders_job_is_rescued_at_once']),
    ('a holder in another pid namespace is judged', 'jobs.py', 'or not p[4] or p[4] != q[4]: return False', ': return False',
     [G + 'test_a_holder_in_another_pid_namespace_is_never_judged_dead']),
    ('the lease is not renewed from the claim', 'runner.py', 'self.ctxs.add(ctx); leases.add(ctx)', 'self.ctxs.add(ctx)',
     [G + 'test_a_claimed_job_keeps_its_lease_while_it_runs']),
    ('slots and threads disagree', 'runner.py', 'got = max(0, min(k, self.free)); self.free -= got', 'got = k',
     [G + 'test_no_more_jobs_run_than_threads']),
    ('SystemExit from a task escapes', 'runner.py',
     "except BaseException as e: return Outcome('error', exc=e, tb=_tb())  # SystemExit",
     "except Exception as e: return Outcome('error', exc=e, tb=_tb())  # SystemExit",
     [G + 'test_whatever_a_task_raises_is_a_failed_attempt']),
    ("a task's own CancelledError ends the runner", 'runner.py', 'if _cancelling(): raise', 'raise',
     [G + 'test_whatever_a_task_raises_is_a_failed_attempt']),
    ('a timed-out thread is not waited for', 'runner.py', '        r = await fut\n',
     "        r = await fut if not ctx.timed_out else Outcome('error', exc=TimeoutError('timeout'))\n",
     [G + 'test_a_timed_out_sync_attempt_is_waited_for_before_its_retry']),
    ('an outcome write is tried once', 'runner.py', 'if not patient: raise', 'if True: raise',
     [G + 'test_a_result_outlasts_a_lock_longer_than_the_busy_timeout']),
    ("the scheduler waits for a tenant's lock", 'scheduler.py',
     'return await in_io(functools.partial(st.inline, fn, *args, wait=0.1))',
     'return await in_io(functools.partial(st.inline, fn, *args, wait=5.0))',
     [G + 'test_a_locked_tenant_does_not_stall_the_others']),
    ('a deleted database is created again', 'store.py', "mode = 'rwc' if create else 'rw'", "mode = 'rwc'",
     [G + 'test_a_deleted_database_is_not_created_again']),
    ('a corrupt row breaks the list', 'utils_bgtsk.py', '''            except (TypeError, ValueError, RecursionError) as e:
                d[k] = None if want is object''', '''            except RecursionError as e:
                d[k] = None if want is object''', [G + 'test_a_corrupt_row_is_listed_as_broken']),
    ("the log's size is never looked at", 'store.py',
     "if (self._wal_near or self._ops % CHECK_WAL_EVERY == 0) and not self._tls.ckpt:", 'if False:',
     [G + 'test_the_log_stays_small_under_a_burst']),
    ("a forked child's job threads are its parent's", 'runner.py',
     "os.register_at_fork(after_in_child=lambda: (t := me()) is not None and t._forked())", "pass",
     [G + 'test_job_threads_work_in_a_forked_child']),
    ('a new job thread counts itself free before its first work', 'runner.py',
     "loop, fut, fn, args = self.work.get()  # a new thread's first work", "self.idle += 1; loop, fut, fn, args = self.work.get()  #",
     [G + 'test_a_tenants_long_jobs_leave_a_slot_for_another_tenant']),
    ("a busy log's checkpoint locks writers out", 'store.py', "_bg.submit(self._catch_up)",
     "_bg.submit(self.checkpoint)", [G + 'test_a_busy_logs_checkpoint_never_locks_out_the_event_loop']),
    ("the log's restart pause waits out a reader on an older snapshot", 'store.py', "if caught: self._restart()",
     "self._restart()", [G + 'test_a_busy_logs_checkpoint_never_locks_out_the_event_loop']),
    ("the background checkpoint never restarts the log", 'store.py', "if caught: self._restart()", "pass",
     [G + 'test_a_steady_stream_of_writes_restarts_the_log_in_short_pauses']),
    ("near its limit the log's size is looked at only every 64 statements", 'store.py',
     "if (self._wal_near or self._ops % CHECK_WAL_EVERY == 0)", "if (self._wal_big or self._ops % CHECK_WAL_EVERY == 0)",
     ['tests/test_faults_store.py::test_wal_bounded_under_burst_and_truncated_when_idle',
      G + 'test_near_its_limit_the_log_is_looked_at_every_statement']),
    ("a job thread's wake-up settles only the first of the results waiting for it", 'runner.py',
     "for fut, ok, r in done: _settle_future(fut, ok, r)", "for fut, ok, r in done[:1]: _settle_future(fut, ok, r)",
     [G + 'test_results_ending_together_in_job_threads_each_reach_their_own_caller']),
    ("a slot handed to a refilled job is also given back", 'scheduler.py',
     "if (st, row['id']) in self._handed: self._handed.discard((st, row['id']))", "if False: pass",
     [G + 'test_a_backlog_drained_in_refills_runs_each_job_once_and_keeps_every_slot_counted']),
    ("a refill hands on no slot", 'scheduler.py', "self._handed.add((store, e['job_id']))", "pass",
     [G + 'test_a_backlog_drained_in_refills_runs_each_job_once_and_keeps_every_slot_counted']),
    ("a refill ignores a second tenant that is due", 'scheduler.py',
     "any(t is not None and t <= now for s, t in self.next.items() if s is not store)", "False",
     [G + 'test_refills_never_keep_a_second_tenants_jobs_to_one_slot']),
    ("a stopping scheduler still refills", 'scheduler.py',
     "if self._stopping or loop is not self._loop", "if loop is not self._loop",
     [G + 'test_a_stopping_scheduler_claims_nothing_more']),
    ("the job a submit told the scheduler of is claimed by its id, ahead of a higher priority", 'scheduler.py',
     "        if getattr(st, 'claim_batch', None) is None or self.tenant_limit is not None: got[i] = await self._claim(st, k, now)",
     "        if _ and st in self.runners: got[i] = [r for r in [(await self._call(st, self.runners[st].claim, _))[1]] if r]\n"
     "        elif getattr(st, 'claim_batch', None) is None or self.tenant_limit is not None: got[i] = await self._claim(st, k, now)",
     [G + 'test_a_submit_told_to_the_scheduler_still_lets_a_higher_priority_job_go_first']),
    ("after the job a submit told it of, the scheduler forgets a later due time", 'scheduler.py',
     "tried.add(st); continue                 # else is due", "self.next[st] = None; tried.add(st); continue  # else is due",
     [G + 'test_a_job_a_submit_told_of_does_not_hide_a_later_due_time']),
    ("after the job a submit told it of, the scheduler reads due times anyway", 'scheduler.py',
     "if told and rows and rows[0]['id'] == told:", "if False:",
     [G + 'test_a_lone_submit_on_a_served_tenant_costs_three_statements']),
    ("a submit's bg_task wakes the scheduler that has its job", 'utils_bgtsk.py',
     "if told is not None and self.store.runner is told: return None", "if False: return None",
     [G + 'test_a_lone_submit_on_a_served_tenant_costs_three_statements']),
    ("a submit from a sync route does not tell the scheduler its job", 'scheduler.py',
     "loop.call_soon_threadsafe(self._woken, store, job)", "loop.call_soon_threadsafe(self._woken, store, None)",
     [G + 'test_a_lone_submit_on_a_served_tenant_costs_three_statements[sync]']),
    ("a function that takes no arguments is never bound again", 'utils_bgtsk.py',
     "if sig is not None and (kwargs or not bare):", "if sig is not None and not bare:",
     [S + 'test_2_b_a_call_that_fitted_before_lets_no_later_call_through']),
    ("a function that needs arguments counts as fitting none", 'utils_bgtsk.py',
     "        except TypeError: bare = False", "        except TypeError: bare = True",
     [S + 'test_2_b_a_call_that_fitted_before_lets_no_later_call_through']),
    ("a burst of submits is claimed a submit at a time", 'scheduler.py',
     "if self._news and self.cooldown:", "if False:",
     [G + 'test_a_burst_of_submits_is_claimed_a_round_at_a_time']),
    ("a submit's news is not marked as news", 'scheduler.py',
     "self.woken.add(store); self._news = True", "self.woken.add(store)",
     [G + 'test_a_burst_of_submits_is_claimed_a_round_at_a_time']),
    ("a scheduler takes any cooldown", 'scheduler.py',
     "self.cooldown = _check_num('cooldown', cooldown, allow_none=False, most=1)", "self.cooldown = cooldown",
     [G + 'test_a_burst_of_submits_is_claimed_a_round_at_a_time']),
    ("a job a submit tells of hides news the scheduler has not looked at", 'scheduler.py',
     "if store in self.woken: return False  # other news waits", "if False: return False  # other news waits",
     [G + 'test_news_the_scheduler_has_not_looked_at_is_not_hidden_by_a_job_a_submit_tells_it_of']),
    ("a due time the scheduler learns is not kept in its heap", 'scheduler.py',
     "heapq.heappush(self._heap, (t, next(self._seq), store))", "pass",
     ['tests/test_many_tenants.py::test_delayed_jobs_in_many_tenants_each_start_on_time_while_another_tenant_is_busy']),
    ("the due times' heap is made again without them", 'scheduler.py',
     "self._heap = [(t, next(self._seq), s) for s, t in self.items() if t is not None]", "self._heap = []",
     [G + 'test_the_due_times_heap_keeps_every_current_time_however_often_one_changes', 'tests/test_many_tenants.py::test_delayed_jobs_in_many_tenants_each_start_on_time_while_another_tenant_is_busy']),
    ("a stale due time in the heap is taken for the current one", 'scheduler.py',
     "while h and self.get(h[0][2]) != h[0][0]: heapq.heappop(h)", "pass",
     [G + 'test_a_lone_submit_on_a_served_tenant_costs_three_statements',
      G + 'test_the_due_times_heap_keeps_every_current_time_however_often_one_changes']),
    ("a job's task is kept by the scheduler after its job ended", 'scheduler.py',
     "self._tasks.discard(asyncio.current_task())", "pass",
     [G + 'test_a_schedulers_job_tasks_are_let_go_and_never_hold_up_its_stop']),
    ("a sync job's wait for its thread is never shielded", 'runner.py',
     "with anyio.CancelScope(shield=True) if shield else contextlib.nullcontext():",
     "with contextlib.nullcontext():", [G + 'test_a_cancelled_caller_still_waits_for_its_sync_jobs_thread']),
    ('the stop waits for a job task that never began', 'scheduler.py',
     "while left := {t for t in self._tasks if not t.done()}:", "while left := set(self._tasks):",
     [G + 'test_a_schedulers_job_tasks_are_let_go_and_never_hold_up_its_stop']),
    ("an idle tenant's log is not truncated", 'scheduler.py', "st.checkpoint('TRUNCATE')  # idle", "pass  # idle",
     [G + 'test_an_idle_tenants_log_is_truncated']),
    ('idle connections are not capped', 'store.py', 'while len(_idle_lru) > MAX_IDLE:', 'while False:',
     [G + 'test_open_files_stay_under_the_cap']),
    ('a forked child signs with its parent id', 'jobs.py', 'w = _ids.get(pid)', 'w = next(iter(_ids.values()), None)',
     [G + 'test_a_forked_child_signs_its_own_leases']),
    ('a declaration by the environment outlives it', 'jobs.py',
     "if path in _submitted or path.partition(':')[0] in mods: _declared_ok.add((path, mods))",
     "_declared_ok.add((path, mods))", [S + 'test_1_c_a_declaration_by_the_environment_ends_with_it']),
    ("a forked child keeps its parent's lease keeper", 'runner.py',
     'os.register_at_fork(after_in_child=lambda: (k := me()) is not None and k._forked())', 'pass',
     [G + 'test_a_forked_child_renews_its_own_leases']),
    ('a task is taken from a module half imported', 'jobs.py',
     "if obj is None or getattr(getattr(obj, '__spec__', None), '_initializing', False):", 'if obj is None:',
     [G + 'test_a_task_module_half_imported_elsewhere_is_waited_for']),
    ('one tenant may take every slot', 'scheduler.py',
     'want = min(self.per_tenant if len(due) > 1 else self.tenant_slots, self.tenant_slots - n, share - n)',
     'want = min(self.per_tenant if len(due) > 1 else self.concurrency, self.concurrency - n)',
     [G + 'test_a_tenants_long_jobs_leave_a_slot_for_another_tenant']),
    ('overdue is logged on every read', 'utils_bgtsk.py', "if n and not getattr(st, '_overdue_told', False):", 'if n:',
     [G + 'test_overdue_is_flagged_and_logged_once']),
    ('a retried statement forgets its first try (PostgreSQL)', 'pg.py', 'if tried and again is not None:', 'if False:',
     ['tests/test_faults_pg.py::test_lost_reply_to_a_claim_orphans_nothing']),
    ('oversized arguments accepted', 'utils_bgtsk.py', 'if len(payload.encode()) > self.max_payload:', 'if False:',
     [G + 'test_bad_arguments_write_nothing']),
    ('arguments that are not JSON accepted', 'utils_bgtsk.py', 'json.dumps(kwargs, allow_nan=False)',
     'json.dumps(kwargs, default=str)', [G + 'test_bad_arguments_write_nothing']),
    ("the dashboard shows another tenant's jobs", 'ui.py', 't = self.tenant_of(req)',
     "t = self.tenant_of(req) and 'acme'", [G + 'test_the_dashboard_shows_a_tenant_nothing_of_another']),
    ('no CSRF check', 'ui.py', 'if why: return Response(', 'if False: return Response(',
     [G + 'test_the_dashboard_shows_a_tenant_nothing_of_another']),
    ('a filter pasted into the SQL', 'store.py', "conds.append('job_type = :job_type'); args['job_type'] = job_type",
     "conds.append(f\"job_type = '{job_type}'\")", ['tests/test_backends.py::test_bad_input_writes_nothing']),
    ('an idle scan queries every database', 'scheduler.py',
     'if not force and sig is not None and sig == self.sigs.get(st) and st not in self.woken:', 'if False:',
     [P + 'test_an_idle_scheduler_queries_no_database']),
    ('a row may run any function', 'jobs.py', 'if not declared(path, task_modules):', 'if False:',
     [S + 'test_1_a_row_naming_any_function_runs_nothing_in_process']),
    ('submit declares its function only after writing the row', 'utils_bgtsk.py',
     "if row['func_path']: _submitted.add(row['func_path'])  # declared before the write: a scheduler may claim it at once\n"
     "    st = self.store  # first with no wait for the lock: the connection the claim and the finish on the loop use\n"
     "    ok, job_id = st.inline(st.insert, row) if st.inline_ok else (False, None)\n"
     "    if not ok: job_id = st.insert(row)",
     "st = self.store\n"
     "    ok, job_id = st.inline(st.insert, row) if st.inline_ok else (False, None)\n"
     "    if not ok: job_id = st.insert(row)\n"
     "    if row['func_path']: _submitted.add(row['func_path'])",
     [S + 'test_1_d_a_job_run_the_moment_its_row_is_written_is_declared']),
    ('a job_type may name another registered task', 'utils_bgtsk.py',
     'if named is not None and named is not task_func:', 'if False:',
     [S + 'test_2_submit_refuses_a_borrowed_name_and_arguments_that_do_not_fit']),
    ("arguments are not checked against the task's signature", 'utils_bgtsk.py', 'try: sig.bind(**kwargs)',
     'try: pass', [S + 'test_2_submit_refuses_a_borrowed_name_and_arguments_that_do_not_fit']),
    ('a PostgreSQL schema is read by prefix', 'pg.py', 'm = _SCHEMA_RE.fullmatch(opts[0])',
     'm = _SCHEMA_RE.match(opts[0])', [S + 'test_3_a_pg_url_must_name_exactly_one_tenant_schema']),
    ('a password in a repr', 'store.py', 'return f"{type(self).__name__}({mask_url(self.url)!r})"',
     'return f"{type(self).__name__}({self.url!r})"', [S + 'test_4_a_no_password_in_reprs_errors_logs_or_pages']),
    ('reading creates a tenant', 'store.py',
     "if st is None: st = _stores[url] = backend(url.split(':', 1)[0])(url, create=create, **kwargs)",
     "if st is None: st = _stores[url] = backend(url.split(':', 1)[0])(url, create=True, **kwargs)",
     [S + 'test_5_b_a_manager_for_a_missing_tenant_is_an_error']),
    ('infinite delays accepted', 'utils_bgtsk.py', 'or not math.isfinite(v) or not 0 <= v <= most:', 'or v < 0:',
     [S + 'test_6_a_non_finite_or_huge_times_are_refused']),
    ('the error log grows without bound', 'runner.py', 'if len(errors) <= MAX_ERRORS: return errors', 'return errors',
     [S + 'test_6_d_fifty_failures_keep_a_bounded_error_log']),
    ('tracebacks shown to tenant users by default', 'ui.py',
     'tracebacks:bool=False, # show each attempt', 'tracebacks:bool=True, # show each attempt',
     [S + 'test_7_c_tracebacks_are_hidden_from_dashboard_users_by_default']),
    ('control characters accepted in a job_type', 'utils_bgtsk.py',
     "if _CONTROL.search(v):", "if False:",
     [S + 'test_8_same_bad_input_same_value_error_on_both_backends']),
    ('run_at ignored', 'utils_bgtsk.py', 'due, ts = max(now + (delay or 0), run_at or 0), timestamp(now)',
     'due, ts = now + (delay or 0), timestamp(now)', [P + 'test_run_at_is_respected']),
    ('web processes run jobs though told not to', 'utils_bgtsk.py', 'if not self.run_here: return None', 'pass',
     [P + 'test_web_processes_only_enqueue_when_told']),
    ("a submit that finds the file locked gives up instead of waiting for it", 'utils_bgtsk.py',
     "if not ok: job_id = st.insert(row)", "if not ok: raise RuntimeError('database is locked')",
     [G + 'test_a_submit_made_while_another_process_holds_the_file_waits_for_it_and_writes_once']),
    ("a host's new tenant file gets SQLite's default page size", 'db_host.py',
     "try: c.execute(f'PRAGMA page_size={PAGE_SIZE}'); c.execute('PRAGMA journal_mode=WAL'); break",
     "try: c.execute('PRAGMA journal_mode=WAL'); c.execute(f'PRAGMA page_size={PAGE_SIZE}'); break",
     [G + 'test_new_tenant_files_get_small_pages_and_older_files_keep_theirs']),
    ("a store's new file gets SQLite's default page size", 'store.py',
     "if create: c.execute(f'PRAGMA page_size={PAGE_SIZE}')", "pass",
     [G + 'test_new_tenant_files_get_small_pages_and_older_files_keep_theirs']),
    ("a sync attempt that ran alone is dropped when the loop cannot write its outcome now", 'runner.py',
     "        return await self._record(row, r, ctx)\n", "        return None, None\n",
     ['tests/test_faults_store.py::test_finish_write_outlasting_busy_timeout_keeps_result']),
    # issue 13: schedules, priorities, the operator's gates
    ('schedule slots written without their key', 'schedules.py',
     "timeout=sched.timeout, key=sched.key(t), priority=sched.priority)", "timeout=sched.timeout, key=None, priority=sched.priority)",
     ['tests/test_schedules.py::test_two_schedulers_and_two_workers_run_each_slot_once']),
    ('claims ignore the priority', 'store.py', 'cancel_requested = 0 ORDER BY priority DESC, run_at"',
     'cancel_requested = 0 ORDER BY run_at"',
     ['tests/test_schedules.py::test_priority_orders_claims_within_a_tenant_and_fairness_holds']),
    ('the operator view lets anyone in', 'ops_ui.py', "if not await self._allowed(req): raise HTTPException(404)",
     "if not (await self._allowed(req) or True): raise HTTPException(404)",
     ['tests/test_ops_gates.py::test_the_operator_view_is_404_to_anyone_allow_refuses']),
    ('the metrics endpoint lets anyone in', 'metrics.py', "        if not ok: return PlainTextResponse(",
     "        if False: return PlainTextResponse(", ['tests/test_metrics.py::test_endpoint_sqlite']),
    ('the claim index holds every row', 'jobs.py', "(status, priority DESC, run_at) WHERE status = 'pending';",
     "(status, priority DESC, run_at);", ['tests/test_indexes.py::test_claims_and_ends_add_nothing_to_the_claim_indexes']),
    ("the due time and the overdue count see the highest priority only", 'store.py',
     "AND priority < pri.v) FROM pri", "AND priority < pri.v AND 0) FROM pri",
     ['tests/test_indexes.py::test_the_due_time_and_the_overdue_count_take_in_every_priority']),
    ("the overdue count takes in jobs due later", 'store.py', "AND priority = pri.v AND run_at < :t)", "AND priority = pri.v)",
     ['tests/test_indexes.py::test_the_due_time_and_the_overdue_count_take_in_every_priority']),
    ("a PostgreSQL schema made without the due times' index goes on without it", 'pg.py',
     "due_ix = _DUE_IX not in have", "due_ix = False",
     ['tests/test_indexes.py::test_postgresql_reads_the_due_times_from_their_own_index']),
    ("PostgreSQL reads the due times from the claim index, a priority at a time", 'pg.py',
     '_due_sql = ("SELECT (SELECT MIN(run_at)', '_due_sql = JobStore._due_sql; _old = ("SELECT (SELECT MIN(run_at)',
     ['tests/test_indexes.py::test_postgresql_reads_the_due_times_from_their_own_index']),
    ("SQLite files keep the due times' index", 'store.py', "_OLD = OLD_INDEXES + (_DUE_IX,)", "_OLD = OLD_INDEXES",
     ['tests/test_indexes.py::test_an_older_table_is_moved_to_the_new_indexes_and_its_keys_still_hold[sqlite]']),
    ("an older SQLite table keeps its old claim indexes", 'store.py',
     'for ix in _OLD: c.execute(f"DROP INDEX IF EXISTS {ix}")', 'pass',
     ['tests/test_indexes.py::test_an_older_table_is_moved_to_the_new_indexes_and_its_keys_still_hold[sqlite]']),
    ("an older PostgreSQL table keeps its old claim indexes", 'pg.py',
     'for ix in old: c.execute(f"DROP INDEX IF EXISTS {self.qschema}.{ix}")', 'pass',
     ['tests/test_indexes.py::test_an_older_table_is_moved_to_the_new_indexes_and_its_keys_still_hold[postgresql]']),
    ("an older PostgreSQL table keeps its key constraint", 'pg.py', "unique = 'tenant_jobs_idem_key_key' in have", "unique = False",
     ['tests/test_indexes.py::test_an_older_table_is_moved_to_the_new_indexes_and_its_keys_still_hold[postgresql]']),
    ("hot statements planned at every run (PostgreSQL)", 'pg.py', "'-c plan_cache_mode=force_generic_plan'", "''",
     ['tests/test_backlog.py::test_pg_claims_and_finishes_are_planned_once_by_index_even_when_planned_on_an_empty_table']),
    ("a plan made on an empty table scans it whole (PostgreSQL)", 'pg.py', "-c enable_seqscan=off '", "'",
     ['tests/test_backlog.py::test_pg_claims_and_finishes_are_planned_once_by_index_even_when_planned_on_an_empty_table']),
    ("batch claims and grouped finishes on the ordinary pool (PostgreSQL)", 'pg.py',
     "with pool_for(conninfo, batch=True).connection(timeout=2) as c: return psycopg.RawCursor(c)",
     "with pool_for(conninfo).connection(timeout=2) as c: return psycopg.RawCursor(c)", ['tests/test_backlog.py::test_pg_claims_and_finishes_are_planned_once_by_index_even_when_planned_on_an_empty_table']),
    ("batch statements on a pool of several connections (PostgreSQL)", 'pg.py',
     "max_size=1 if batch else 4 if claims else size", "max_size=4 if claims or batch else size", ['tests/test_backlog.py::test_pg_batch_statements_are_prepared_once_per_process_whatever_the_order_of_their_tenants']),
    ("a batch claim's text follows the tenants' turns (PostgreSQL)", 'pg.py',
     "order = sorted(range(len(items)), key=lambda i: items[i][0].schema)", "order = list(range(len(items)))", ['tests/test_backlog.py::test_pg_batch_statements_are_prepared_once_per_process_whatever_the_order_of_their_tenants']),
    ("a grouped finish's text follows the order its jobs ended in (PostgreSQL)", 'pg.py',
     "parts = sorted(by.values(), key=lambda p: p[0].schema)", "parts = list(by.values())", ['tests/test_backlog.py::test_pg_batch_statements_are_prepared_once_per_process_whatever_the_order_of_their_tenants']),
    ("a batch claim's rows go back in the statement's order (PostgreSQL)", 'pg.py',
     "out[order[r.pop('k')]].append(r)", "out[r.pop('k')].append(r)", ['tests/test_backlog.py::test_pg_batch_statements_are_prepared_once_per_process_whatever_the_order_of_their_tenants']),
    ("a cancel request landing after the task ended cancels its caller", 'runner.py',
     "if ctx.on_cancel is stop and not sent: sent.append(True); task.cancel()", "if not sent: sent.append(True); task.cancel()",
     ['tests/test_guards.py::test_a_cancel_arriving_after_the_task_ended_does_not_cancel_its_caller']),
    ("a scheduler cancelled from outside leaves its jobs running", 'scheduler.py',
     "await self._stop_jobs()  # handed back, each of them; also when cancelled from outside: nothing of ours runs on after this", "pass", ['tests/test_guards.py::test_a_scheduler_cancelled_from_outside_stops_its_jobs_before_it_returns']),
    ("stopping a runner leaves its async tasks running", 'runner.py', "if c.on_cancel: c.on_cancel()", "pass", ['tests/test_guards.py::test_a_scheduler_cancelled_from_outside_stops_its_jobs_before_it_returns']),
    ("a connection leaving the pool is closed on the event loop", 'store.py', "        _close(evict)", "        _close_now(evict)",
     [G + 'test_a_connection_leaving_the_pool_is_closed_off_the_event_loop']),
    ("a connection leaving the pool from the event loop is never closed", 'store.py',
     "try: _bg.submit(_close_now, conns); return", "return",
     [G + 'test_a_connection_leaving_the_pool_is_closed_off_the_event_loop']),
]

def copy_tree(dst:Path):
    ign = shutil.ignore_patterns('__pycache__', 'artifacts', '*.pyc')
    for d in ('fh_saas', 'tests'): shutil.copytree(ROOT/d, dst/d, ignore=ign)

# Every run is a fork of this process, made after it imported pytest, its plugins and the libraries the tests use:
# a run then starts in a fraction of a second instead of the two a new interpreter needs (122 runs). Nothing of
# `fh_saas` or of the tests is imported here, so each run imports its own copy.
PRELOAD = ('pytest', 'hypothesis', 'hypothesis.strategies', 'fasthtml.common', 'fastsql', 'fastlite', 'sqlalchemy',
           'psycopg', 'psycopg_pool', 'starlette.applications', 'starlette.testclient', 'httpx', 'uvicorn', 'anyio',
           'playwright.sync_api', 'cronsim', 'prometheus_client', 'sqlite3', 'asyncio', 'concurrent.futures')

def preload():
    import importlib, importlib.metadata
    for m in PRELOAD:
        try: importlib.import_module(m)
        except ImportError: pass
    for ep in importlib.metadata.entry_points(group='pytest11'):  # the plugins pytest would load in every run
        try: ep.load()
        except Exception: pass
    mine = [m for m in sys.modules if m.split('.')[0] in ('fh_saas', 'conftest', 'pgserver')]
    assert not mine, f"the runs must import fh_saas and the tests themselves, yet these are loaded: {mine}"

class Run:
    "The named tests in a forked process, in `copy` (first on its `sys.path` and, for processes it starts, `PYTHONPATH`)."
    def __init__(self, copy:Path, tests:list, env:dict, timeout:float=180):
        self.timeout, self.log = timeout, copy/"pytest.log"
        self.t0 = time.monotonic()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns; os._exit skips the parent's atexit (the PostgreSQL server's stop)
            code = 3
            try:
                os.setpgid(0, 0)  # its own group: a timeout kills what the tests started too
                fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC); os.dup2(fd, 1); os.dup2(fd, 2)
                os.chdir(copy); os.environ.clear(); os.environ.update(env)
                sys.path[:0] = [str(copy), str(copy/'tests')]
                import pytest
                code = int(pytest.main(['-x', '-q', '-p', 'no:cacheprovider', *tests]))
            except BaseException:
                import traceback; traceback.print_exc()
            finally:
                try: sys.stdout.flush(); sys.stderr.flush()
                finally: os._exit(code)
    def poll(self):
        "(exit code, seconds, output) once the run ended, else None; past its timeout it is killed, code -9."
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        secs = time.monotonic() - self.t0
        if pid == 0:
            if secs < self.timeout: return None
            try: os.killpg(self.pid, 9)
            except ProcessLookupError: pass
            os.waitpid(self.pid, 0); code = -9
        else: code = os.waitstatus_to_exitcode(status)
        out = self.log.read_text(errors='replace') + (f"\ntimed out after {self.timeout} s" if code == -9 else '')
        return code, secs, out

def run_all(runs:list, jobs:int, on_end) -> list:
    "Start the runs (callables making a `Run`) `jobs` at a time; `on_end(k, code, secs, out)` as each ends, in order of ending."
    out, live, todo = [None] * len(runs), {}, list(range(len(runs)))
    while todo or live:
        while todo and len(live) < jobs: k = todo.pop(0); live[k] = runs[k]()
        for k, r in list(live.items()):
            if (res := r.poll()) is not None: del live[k]; out[k] = on_end(k, *res)
        time.sleep(0.02)
    return out

def past_secs(path:Path) -> dict:
    "Each mutant's seconds in the last full run (its table's last column), to start the slowest first."
    try: rows = [l.split(' | ') for l in path.read_text().splitlines() if l.startswith('| ') and l.endswith(' |')]
    except OSError: return {}
    return {r[0][2:]: float(r[-1][:-2]) for r in rows if len(r) == 5 and r[-1][:-2].replace('.', '', 1).isdigit()}

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('-k', default='', help='only mutants whose name contains this')
    ap.add_argument('--out', type=Path, default=ROOT/'bench'/'results'/'mutants.md')
    ap.add_argument('--jobs', type=int, default=3, help='mutants run at once')
    ap.add_argument('--after-pytest', action='store_true',
                    help="check only a few of the tests on the unbroken code: the test command's pytest just ran them all")
    a = ap.parse_args()
    todo = [m for m in MUTANTS if a.k in m[0]]
    for name, file, old, new, tests in todo:  # every text must be found before anything runs
        n = (ROOT/'fh_saas'/file).read_text().count(old)
        if n != 1: print(f"mutants: {name!r}: its text occurs {n} times in {file}, not once"); return 1
    sys.path.insert(0, str(ROOT/'tests'))
    from pgserver import PgServer
    sys.path.remove(str(ROOT/'tests')); del sys.modules['pgserver']
    preload()
    t_start = time.monotonic()
    with PgServer() as pg, tempfile.TemporaryDirectory(prefix='fh-saas-mutants-') as work:
        work = Path(work)
        base = dict(os.environ, FH_SAAS_TEST_PG=pg.url)
        def env(d): return dict(base, PYTHONPATH=os.pathsep.join([str(d), str(d/'tests')]))
        was = past_secs(a.out)
        # First the named tests run on the unbroken copy, in a run made as the mutants' are, and must pass. After the
        # test command's pytest, which just ran them all, only the tests of the eight quickest mutants: enough to show
        # that a forked run passes where pytest passed (were it broken, every mutant would look killed)
        quick = sorted(todo, key=lambda m: was.get(m[0], 1e9))[:8] if a.after_pytest else todo
        clean = work/'clean'; copy_tree(clean)
        all_tests = list(dict.fromkeys(t for m in quick for t in m[4]))
        [(code, secs, out)] = run_all([lambda: Run(clean, all_tests, env(clean), timeout=600)], 1, lambda k, *r: r)
        if code != 0:
            print(out[-4000:]); print(f"mutants: the tests fail on the unbroken code ({code}): fix them first"); return 1
        print(f"mutants: {len(all_tests)} tests pass on the unbroken code ({secs:.0f} s)", flush=True)
        def start(k):
            name, file, old, new, tests = todo[k]
            d = work/f"m{k}"; copy_tree(d)
            f = d/'fh_saas'/file; f.write_text(f.read_text().replace(old, new))
            return Run(d, tests, env(d))
        def end(k, code, secs, out):
            name, file, old, new, tests = todo[k]
            shutil.rmtree(work/f"m{k}", ignore_errors=True)
            killed = code not in (0, 5)
            print(f"mutants: {'killed  ' if killed else 'SURVIVED'} {secs:5.1f} s  {name}", flush=True)
            return (name, file, tests, 'killed' if killed else 'SURVIVED', secs)
        # three at once, the slowest of the last run first: a run mostly waits (the slow ones wait out a test's
        # timeout), so three keep the two cores about as busy as the test command's `pytest -n 2` keeps them. The cost:
        # a killer test that failed only because the machine was busy would make its mutant look killed; the tests
        # named here have bounds far from what a loaded machine needs, and `--jobs 1` gives the strict run
        order = sorted(range(len(todo)), key=lambda k: -was.get(todo[k][0], 1e9))
        done = run_all([lambda k=k: start(k) for k in order], max(1, a.jobs), lambda i, *r: end(order[i], *r))
        rows = [None] * len(todo)
        for i, r in enumerate(done): rows[order[i]] = r
        survived = [r[0] for r in rows if r[3] != 'killed']
    took = time.monotonic() - t_start
    lines = ["# Mutation check", "",
             f"Produced by `.venv/bin/python .ci/mutants.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
             f"({took:.0f} s); the test command runs it. Each row is one breakage applied to a copy of the package; "
             "it is *killed* when the tests named beside it fail.", "",
             f"**{len(rows) - len(survived)} of {len(rows)} killed.**", "",
             "| breakage | in | killed by | result | s |", "|---|---|---|---|---:|"]
    lines += [f"| {n} | `{f}` | {', '.join('`' + t.split('::')[-1] + '`' for t in ts)} | {r} | {secs:.1f} |"
              for n, f, ts, r, secs in rows]
    if not a.k:
        a.out.parent.mkdir(parents=True, exist_ok=True); a.out.write_text('\n'.join(lines) + '\n')
    print(f"mutants: {len(rows) - len(survived)} of {len(rows)} killed in {took:.0f} s")
    if survived: print("mutants: SURVIVED (the suite does not notice these):\n  " + '\n  '.join(survived)); return 1
    return 0

if __name__ == '__main__': sys.exit(main())
