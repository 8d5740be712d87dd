"""Where does one probe measurement spend its time? ``python benchmarks/profile_probe.py [--device cuda]``.

Profiles ``PlasticityProbe.measure`` on the benchmark models (``test_probe_throughput.MODELS``) with
``torch.profiler`` and prints, per model: the plain forward + backward and probe times, the operators dispatched and
host synchronisations per measurement (``ocp.dispatch_count``), and the operators with the largest self CPU time.
Not a test: a diagnostic for the probe-throughput benchmark.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from test_probe_throughput import MODELS, setup, sync  # noqa: E402

from ocp.dispatch_count import count_dispatch  # noqa: E402
from ocp.probe import PlasticityProbe  # noqa: E402


def median_time(fn, device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    device = torch.device(args.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for name in args.models:
        net, x, loss = setup(name, args.activation, device)
        params = list(net.parameters())
        probe = PlasticityProbe(net)

        def plain(net=net, x=x, loss=loss, params=params):
            return torch.autograd.grad(loss(net(x)), params)

        def measure(probe=probe, x=x, loss=loss):
            return probe.measure(x, loss)

        for _ in range(5):
            plain(), measure()
        t_plain, t_probe = median_time(plain, device, args.repeats), median_time(measure, device, args.repeats)
        with profile(activities=activities) as prof:
            for _ in range(args.repeats):
                measure()
            sync(device)
        events = prof.key_averages()
        count = count_dispatch(measure)
        print(
            f"\n== {name} / {args.activation} on {device}: plain {t_plain * 1e3:.2f} ms, probe {t_probe * 1e3:.2f} ms "
            f"({t_probe / t_plain:.2f}x); per measurement: {count.operators} operators, {count.host_syncs} host "
            f"synchronisations {dict(count.syncs_by_kind)}"
        )
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.top, max_name_column_width=40))


if __name__ == "__main__":
    main()
