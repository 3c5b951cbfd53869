"""What machine a benchmark ran on (one line), and the one peak-memory reader.

Figures from different sessions are only comparable on the same kind of CPU: the
machines lent here have changed between sessions (e.g. from one without AVX-512 to a
Zen 4 EPYC with it, where TensorFlow's and numpy's kernels run about twice as fast),
so every benchmark prints this line with its table.
"""
import os


def describe():
    """'N cores, <CPU model> family F model M (<widest vector unit>), load average L'."""
    first = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if not line.strip():
                    break                      # the first processor's block is enough
                key, _, value = line.partition(":")
                first[key.strip()] = value.strip()
    except OSError:
        pass
    flags = set(first.get("flags", "").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (f"{os.cpu_count()} cores, {first.get('model name', 'unknown CPU')} family "
            f"{first.get('cpu family', '?')} model {first.get('model', '?')} ({vector}), "
            f"load average {os.getloadavg()[0]:.1f}")


def peak_rss_mb(field="VmHWM"):
    """This process's peak resident memory in MB (VmHWM: unlike ru_maxrss, not inherited
    across fork+exec; `field="VmRSS"`: the current one); NaN where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


if __name__ == "__main__":
    print(describe())
