"""How steady this machine is: one fixed piece of Python arithmetic, timed back to back for some seconds, alone.

On a quiet machine every piece takes about as long as the median one. On a shared virtual machine the host slows the
guest down now and then, for tens of milliseconds at a time: pieces take 2.5 times the median or longer. A job whose
few milliseconds fall in such a moment takes several times its usual latency, whatever runs it, so the harness
measures this before and after its run and prints it beside the latency figures. No assertion: it reports.

    .venv/bin/python bench/noise.py [seconds]
"""
import json, sys, time

SLOW = 2.5  # a piece (or a 10 ms window's average piece) this many times the median counts as slowed


def noise(seconds:float=10.0, chunk:int=1000) -> dict:
    "Time `chunk` additions back to back for `seconds`: the median piece (us), the share of the time in slowed pieces, and slowed 10 ms windows per second."
    out, end = [], time.perf_counter() + seconds
    while (a := time.perf_counter()) < end:
        x = 0
        for i in range(chunk): x += i
        out.append((a, time.perf_counter() - a))
    med = sorted(d for _, d in out)[len(out) // 2]
    slow = sum(d for _, d in out if d >= SLOW * med) / sum(d for _, d in out)
    windows, t0, acc, n = 0, out[0][0], 0.0, 0
    for a, d in out:  # consecutive 10 ms windows whose average piece was slowed
        if a - t0 >= 0.01:
            if n and acc / n >= SLOW * med: windows += 1
            t0, acc, n = a, 0.0, 0
        acc += d; n += 1
    return dict(median_us=med * 1e6, slow_share=slow, slow_windows_per_s=windows / seconds)


if __name__ == '__main__':
    print(json.dumps(noise(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)))
