"""prepare-crops throughput and memory: synthetic 1024×1024 fields of view → OpenCell crops.

Writes a pool of distinct synthetic fields (`write_fovs`: one OME-TIFF per channel, ~40 cells
of 96 px each) and FOVS.csv tables that list them over and over under distinct fov ids. Each
measurement runs ``prepare-crops --layout opencell`` (the paper's settings: ×2 downsampling,
100×100 crops) in a fresh process while this one samples the resident memory of that
process and all its children (the workers) every 0.1 s. Prints fields/s and crops/s for each
--workers value (and the CPU time, which stays meaningful when other programs share the
cores), then the peak memory for each --memory-fields count: streaming keeps it flat.

    .venv/bin/python bench/prepare.py [--fields 32] [--workers 1,2] [--memory-fields 50,200]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file:
                    parent = int(file.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(parent, []).append(int(entry))
    return tree


def tree_usage(pid: int, cpu: dict[int, float]) -> int:
    """Resident bytes of `pid` and all its descendants (Linux /proc); their CPU seconds so far
    are recorded in `cpu` (pid -> seconds), so processes that have exited still count."""
    tree, total, stack = _children(), 0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while stack:
        current = stack.pop()
        stack.extend(tree.get(current, []))
        try:
            with open(f"/proc/{current}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
            cpu[current] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            with open(f"/proc/{current}/status") as file:
                for line in file:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            pass
    return total


def run(fovs: Path, out: Path, workers: int) -> tuple[float, int, int, float]:
    """(seconds, crops written, peak tree RSS in bytes, CPU seconds) of one prepare-crops run.

    CPU seconds (user + system of the run and all its processes, sampled every 0.1 s) tell
    what the run cost when other programs share the cores: wall-clock rates then understate it.
    """
    command = [sys.executable, "-m", "statcell_tf.cli", "prepare-crops", str(fovs), "--layout", "opencell",
               "--out", str(out), "--workers", str(workers), "--montage-crops", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start, cpu = time.perf_counter(), {}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = [0]

    def sample():
        while process.poll() is None:
            peak[0] = max(peak[0], tree_usage(process.pid, cpu))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.communicate()[0]
    seconds = time.perf_counter() - start
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"prepare-crops failed ({process.returncode}): {output}")
    crops = int(pd.read_csv(out / "summary.csv")["crops"].sum())
    return seconds, crops, peak[0], sum(cpu.values())


def table(pool: Path, n: int, path: Path) -> Path:
    """FOVS.csv listing the pool's fields cyclically as `n` distinct fields of view."""
    base = pd.read_csv(pool / "fovs_opencell.csv")
    rows = base.iloc[[i % len(base) for i in range(n)]].copy()
    rows["fov"] = [f"f{i:05d}" for i in range(n)]
    for column in ("pro", "nuc"):
        rows[column] = [str(pool / p) for p in rows[column]]
    rows.to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=32, help="fields per throughput run")
    parser.add_argument("--workers", default="1,2", help="comma-separated --workers values")
    parser.add_argument("--memory-fields", default="50,200", help="comma-separated field counts for peak memory")
    parser.add_argument("--pool", type=int, default=8, help="distinct synthetic fields")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from statcell_tf.data.synthetic import write_fovs

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pool = write_fovs(tmp / "pool", n_families=min(args.pool, 11), fields_per_protein=-(-args.pool // 11),
                          cells_per_field=40, size=(1024, 1024), cell_size=96, seed=0)
        print(f"{args.pool} distinct synthetic 1024x1024 fields (2 channels, uint16, ~40 cells); "
              "--layout opencell (downsample 2, 100x100 crops); CPU cores: " + str(os.cpu_count()))
        fovs = table(pool, args.fields, tmp / "fovs.csv")
        run(table(pool, 2, tmp / "warm.csv"), tmp / "warm", 1)  # page cache, imports
        for workers in [int(w) for w in args.workers.split(",")]:
            seconds, crops, peak, cpu = run(fovs, tmp / f"w{workers}", workers)
            print(f"workers {workers}: {args.fields} fields in {seconds:.1f} s: {args.fields / seconds:.2f} fields/s, "
                  f"{crops / seconds:.1f} crops/s ({crops} crops; process start included), {cpu:.1f} CPU s "
                  f"({args.fields / cpu:.2f} fields per CPU s), peak memory {peak / 2**20:.0f} MiB")
        workers = max(int(w) for w in args.workers.split(","))
        for n in [int(n) for n in args.memory_fields.split(",")]:
            seconds, crops, peak, _ = run(table(pool, n, tmp / f"mem{n}.csv"), tmp / f"mem{n}", workers)
            print(f"{n} fields, workers {workers}: peak memory {peak / 2**20:.0f} MiB (all processes), "
                  f"{crops} crops ({crops * 3 * 100 * 100 * 4 / 2**20:.0f} MiB written) in {seconds:.1f} s")


if __name__ == "__main__":
    main()
