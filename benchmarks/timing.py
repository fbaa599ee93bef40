"""Wall-clock timing, peak-memory reading and the machine description for the benchmarks.

Times are medians over repetitions after warm-up calls (which absorb tracing and XLA
compilation). A `tf.function` call on CPU returns once its outputs are computed, so the
clock stops when the work is done.
"""

import ctypes
import datetime
import os
import platform
import statistics
import time


def interleaved_median_seconds(cases, warmup, repeats):
    """Median wall time of each `fn(*args)` in `cases` (key -> (fn, args)), timed in rounds
    that call every case once, so slow drifts of the machine (other load, clock changes)
    hit every case alike and ratios between them stay meaningful.

    Returns `(medians, errors)`: key -> seconds for the cases that ran, key -> exception
    for those whose warm-up (tracing, compilation) or timing failed.
    """
    if repeats < 1 or warmup < 1:
        raise ValueError(f"need repeats >= 1 and warmup >= 1 (the first call traces and "
                         f"compiles); got {repeats}, {warmup}.")
    errors, times = {}, {key: [] for key in cases}
    for key, (fn, args) in cases.items():
        try:
            for _ in range(warmup):
                fn(*args)
        except Exception as e:  # one failing case must not stop the others
            errors[key] = e
    for _ in range(repeats):
        for key, (fn, args) in cases.items():
            if key in errors:
                continue
            try:
                start = time.perf_counter()
                fn(*args)
                times[key].append(time.perf_counter() - start)
            except Exception as e:
                errors[key] = e
    medians = {key: statistics.median(t) for key, t in times.items() if key not in errors}
    return medians, errors


def record_case(record, measure, describe, log, records, on_record=None):
    """Fills `record` by `measure(record)`, or with the error that stopped it (one failing
    case must not end a long run), then logs it and hands it to `records`/`on_record`."""
    try:
        measure(record)
    except Exception as e:
        record["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    log(describe(record))
    records.append(record)
    if on_record:
        on_record(record)


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _reset_peak_rss():
    """Resets the kernel's peak-RSS mark (VmHWM) for this process; False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim():
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the reading may then under-count reused memory


def peak_memory_mib(fn, args):
    """Extra resident memory at the peak of one `fn(*args)` call, in MiB.

    Reads Linux's peak-RSS mark after resetting it, so it covers everything TensorFlow
    allocates (activations kept for the backward pass, gradients, workspace). Returns None
    where the mark cannot be reset (non-Linux), rather than a number that means
    something else.
    """
    if not os.path.exists("/proc/self/status"):
        return None
    # Hand freed heap memory back to the OS first: glibc keeps freed buffers (its mmap
    # threshold grows after large frees), and memory it kept would not count as new.
    _malloc_trim()
    if not _reset_peak_rss():
        return None
    before = _status_kib("VmRSS")
    fn(*args)
    peak = _status_kib("VmHWM")
    return max(peak - before, 0) / 1024.0


def machine_info():
    import keras
    import tensorflow as tf

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
