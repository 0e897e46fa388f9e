"""Thread and MKL settings for CPU training, applied before Paddle is imported.

Paddle's bundled MKL checks the CPU vendor and takes a slow generic path on AMD processors;
``MKL_DEBUG_CPU_TYPE=5`` makes it use its AVX2 kernels there (measured on a 2-core AMD EPYC:
fp32 matmul ~28 -> ~150 GFLOP/s, one AAE step ~409 -> ~110 ms). ``OMP_NUM_THREADS`` is set to
the number of cores this process may use; a value that is not a positive whole number
(``abc``, ``0``) is replaced by that number too, with a one-line warning on stderr. Both are set only where the user has not set them,
and the MKL switch only on x86 AMD CPUs. Importing this module applies the settings; it must be
imported before ``paddle`` (train.py, eval.py and the tests do so first).

It also asks glibc's malloc to keep freed memory instead of handing it back to the kernel at
once. By default every large tensor freed in a training step (a 1200x1200 weight gradient is
5.8 MB) is returned to the kernel and the next step's allocation page-faults it back in,
which made such a matmul run at ~60 instead of ~170 GFLOP/s on the machine above. The process
keeps its peak memory instead (a few hundred MB for the paper's model).

Last, it imports Paddle itself, without the warnings Paddle prints on every start, which
would otherwise stand above every error message and log line:

- "No ccache found ..." (a ``UserWarning`` of paddle/utils/cpp_extension/extension_utils.py,
  issued when that module is imported by ``import paddle``): it concerns compiling C++
  extensions, which this project never does; filtered with ``warnings``;
- "WARNING: OMP_NUM_THREADS set to 2, not 1. The computation speed will not be optimized if
  you use data parallel ..." and "PLEASE USE OMP_NUM_THREADS WISELY." (printed to
  ``sys.stderr`` by ``__bootstrap__`` in paddle/base/__init__.py whenever OMP_NUM_THREADS is
  above 1): the threads are set on purpose (above). Those two lines are dropped from stderr
  while Paddle is imported; the thread settings stay exactly as set, and anything else
  written to stderr meanwhile passes through.
"""
import ctypes
import ctypes.util
import os
import platform
import sys
import warnings

# mallopt parameters from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _is_amd_x86():
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            head = f.read(4096)
    except OSError:
        return False
    return "AuthenticAMD" in head


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def keep_freed_memory():
    """Raise glibc's trim and mmap thresholds (unless the user set MALLOC_* variables);
    returns True if applied. A no-op on other C libraries and operating systems."""
    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    trimmed = mallopt(_M_TRIM_THRESHOLD, 1 << 30)  # keep up to 1 GB of free heap
    mapped = mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's maximum; larger blocks use mmap
    return bool(trimmed and mapped)


def _positive_whole_number(text):
    return text.strip().isdigit() and int(text) > 0


def configure():
    """Apply the settings where the user has not; return what is in force (for the record)."""
    if _is_amd_x86():
        os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads is not None and not _positive_whole_number(threads):
        # OpenMP would print its own complaint and run on a default of its choice
        print(f"warning: OMP_NUM_THREADS={threads!r} is not a positive whole number; using "
              f"{usable_cores()} (the cores this process may use) instead", file=sys.stderr)
        del os.environ["OMP_NUM_THREADS"]
    os.environ.setdefault("OMP_NUM_THREADS", str(usable_cores()))
    settings = {k: os.environ.get(k) for k in ("MKL_DEBUG_CPU_TYPE", "OMP_NUM_THREADS")}
    settings["malloc_keeps_freed_memory"] = keep_freed_memory()
    warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
    # BatchNorm1D (--architecture pytorch_gan) warns at every training forward that it tracks
    # the running statistics, which is what it should do
    warnings.filterwarnings("ignore", message="When training, we now always track global mean",
                            category=UserWarning)
    return settings


# The lines paddle/base/__init__.py's __bootstrap__ prints when OMP_NUM_THREADS > 1.
PADDLE_BANNER = ("WARNING: OMP_NUM_THREADS set to ", "PLEASE USE OMP_NUM_THREADS WISELY.")


class _DropLines:
    """Stands in for a text stream: passes whole lines on to ``stream``, except those starting
    with one of ``prefixes``; anything else (``fileno``, ``isatty``, ...) is the stream's."""

    def __init__(self, stream, prefixes):
        self.stream = stream
        self.prefixes = tuple(prefixes)
        self.pending = ""

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def write(self, text):
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if not line.startswith(self.prefixes):
                self.stream.write(line + "\n")
        return len(text)

    def flush(self):
        if self.pending and not self.pending.startswith(self.prefixes):
            self.stream.write(self.pending)
        self.pending = ""
        self.stream.flush()


def import_paddle_quietly():
    """``import paddle`` with Paddle's start-up banner about OMP_NUM_THREADS left out of
    stderr (see the module docstring); returns the module."""
    real = sys.stderr
    if real is None:  # no stderr at all (pythonw): nothing to keep clean
        import paddle
        return paddle
    quiet = sys.stderr = _DropLines(real, PADDLE_BANNER)
    try:
        import paddle
    finally:
        if sys.stderr is quiet:
            sys.stderr = real
        quiet.flush()
    return paddle


SETTINGS = configure()
import_paddle_quietly()
