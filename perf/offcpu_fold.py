#!/usr/bin/env python3
"""Folds `perf script` output of sched:sched_switch events into off-CPU stacks.

usage: perf script -F comm,pid,tid,time,event,trace,ip,sym | offcpu_fold.py PID > folded.txt

For every thread of process PID: its switch-out (prev_pid = tid) opens an off-CPU interval
charged to the stack recorded at that switch; its next switch-in (next_pid = tid, seen in
another task's event) closes it. Output lines are `comm/tid;[state];outer;...;inner <microseconds>`
(inferno-flamegraph / flamegraph.pl format); state is the prev_state of the switch-out:
S (sleeping), D (uninterruptible), R (preempted while runnable).
"""
import collections
import re
import sys

HEAD = re.compile(r"^\s*(?P<comm>.+?)\s+(?P<pid>-?\d+)/(?P<tid>\d+)\s+(?P<ts>\d+\.\d+):\s+sched:sched_switch:\s+(?P<trace>.*)$")
PREV = re.compile(r"prev_pid=(\d+).*?prev_state=(\S+)")
NEXT = re.compile(r"next_pid=(\d+)")


def main():
    pid = sys.argv[1]
    open_at = {}  # tid -> (ts, stack)
    folded = collections.Counter()
    event = None
    stack = []

    def finish():
        if event is None:
            return
        ts, ev_pid, ev_tid, comm, trace = event
        m = PREV.search(trace)
        n = NEXT.search(trace)
        if n and n.group(1) in open_at:
            t0, key = open_at.pop(n.group(1))
            us = int((ts - t0) * 1e6)
            if us > 0:
                folded[key] += us
        if m and ev_pid == pid and m.group(1) == ev_tid:
            state = m.group(2)[0]
            frames = [f for f in reversed(stack) if f != "[unknown]"]
            open_at[ev_tid] = (ts, ";".join([f"{comm}/{ev_tid}", f"[{state}]"] + frames))

    for line in sys.stdin:
        h = HEAD.match(line)
        if h:
            finish()
            event = (float(h["ts"]), h["pid"], h["tid"], h["comm"].replace(" ", "_"), h["trace"])
            stack = []
            continue
        parts = line.split(None, 1)
        if len(parts) == 2 and event is not None:
            sym = parts[1].strip()
            sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
            sym = re.sub(r"\s+\(.*\)$", "", sym)
            stack.append(sym.replace(";", ":").replace(" ", "_") or "[unknown]")
    finish()
    for key, us in folded.most_common():
        print(f"{key} {us}")


if __name__ == "__main__":
    main()
