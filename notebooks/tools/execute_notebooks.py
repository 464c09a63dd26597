#!/usr/bin/env python3
"""Executes Jupyter notebooks with nbclient (kernel spark-lora-java) and checks what matters in their
outputs; exit 1 on the first cell error or failed check.

  execute_notebooks.py OUT_DIR NOTEBOOK...   executed copies go to OUT_DIR; the inputs are never written

Checks: no cell errors; every notebook shows at least one image/png; a notebook that prints
"LOSS first=A last=B" must have B < A; one that prints "PARAMS file=N counted=M" must have N == M."""
import pathlib, re, sys, time
import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient


def coalesce_streams(nb):
    """The kernel sends a printf as several stream messages; merge consecutive ones of a cell (same
    stream) into one output, as Jupyter shows them, so that lines read whole here and on GitHub."""
    for cell in nb.cells:
        merged = []
        for out in cell.get("outputs", []):
            if (out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                    and merged[-1].get("name") == out.get("name")):
                merged[-1]["text"] += out.get("text", "")
            else:
                merged.append(out)
        if cell.get("cell_type") == "code":
            cell["outputs"] = merged


def texts(nb):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                yield out.get("text", "")
            elif "data" in out and "text/plain" in out["data"]:
                yield out["data"]["text/plain"]


def images(nb):
    return sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))


def check(path, nb):
    problems = []
    n = images(nb)
    if n == 0:
        problems.append("no image/png output")
    text = "\n".join(texts(nb))
    loss = re.search(r"LOSS first=([-\d.eE]+) last=([-\d.eE]+)", text)
    if loss and not float(loss.group(2)) < float(loss.group(1)):
        problems.append(f"loss did not fall: {loss.group(0)}")
    params = re.search(r"PARAMS file=(\d+) counted=(\d+)", text)
    if params and params.group(1) != params.group(2):
        problems.append(f"parameter count differs: {params.group(0)}")
    summary = f"{n} image(s)" + (f", {loss.group(0)}" if loss else "") + (f", {params.group(0)}" if params else "")
    return problems, summary


def execute(nb, path):
    """Runs every cell. rapaio-jupyter-kernel 3.0.1 had two start-up races that left a kernel which never
    answers (its channel threads could end before they started, or die on a request that arrived before
    the message handlers); install-kernel.sh puts a mended LoopThread before its jar. Should a kernel still
    not answer kernel_info at start-up, it is replaced, up to 3 times. A cell error is never retried."""
    for attempt in range(1, 4):
        km = KernelManager(kernel_name="spark-lora-java")
        km.start_kernel(cwd=str(path.parent))
        client = NotebookClient(nb, km=km, timeout=1200, startup_timeout=60,
                                resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
            return
        except RuntimeError as e:
            if "didn't respond" not in str(e) or attempt == 3:
                raise
            print(f"     {path.name}: kernel did not answer at start-up, starting another ({e})", file=sys.stderr)
        finally:
            if km.is_alive():
                km.shutdown_kernel(now=True)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_dir = pathlib.Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[2:]:
        path = pathlib.Path(name).resolve()
        nb = nbformat.read(path, as_version=4)
        started = time.time()
        try:
            execute(nb, path)
        except Exception as e:  # CellExecutionError names the cell and the error
            coalesce_streams(nb)
            nbformat.write(nb, out_dir / path.name)
            print(f"FAIL {path.name}: {e}", file=sys.stderr)
            sys.exit(1)
        coalesce_streams(nb)
        nbformat.write(nb, out_dir / path.name)
        problems, summary = check(path, nb)
        if problems:
            print(f"FAIL {path.name}: " + "; ".join(problems), file=sys.stderr)
            sys.exit(1)
        print(f"ok   {path.name} in {time.time() - started:.0f} s: {summary}")


if __name__ == "__main__":
    main()
