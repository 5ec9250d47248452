#!/usr/bin/env bash
# Compatibility runs (`make compat`): the unit tests and the widgets' kernel side in a throw-away venv under
# .compat/ENV with other versions than .venv has.
#
#   compat/run.sh colab    Colab's versions: Python 3.12, ipywidgets 7.7.1, torch 2.9.1 + torchvision 0.24.1 (the
#                          lowest 2.9 pip installs here; Colab has 2.9.x), the rest as pip resolves.
#   compat/run.sh floors   every runtime dependency at the lowest version pyproject.toml declares (its `>=`), on the
#                          lowest Python it declares (requires-python).
#
# Installs `pip install -e .` plus the test tools and the reference libraries the unit tests compare to (their
# ranges from the `dev` extra), every pin above held as a pip constraint; trains the shared models into the env's
# own cache (.compat/ENV/cache, kept between runs) as `make test` does; then runs
#   - the unit tests: tests/ without the browser tests and without the tests that execute notebooks in a Jupyter
#     kernel (DESELECT below: the compat venvs have no Jupyter server or kernel stack beyond what ipywidgets pulls);
#   - compat/widgets_check.py: builds every mmcourse.viz *_explorer and each notebook's widget cell, changes every
#     control, asserts the output is redrawn and changes, without an exception.
# Prints one summary line (also appended to .compat/summary.txt); exits 1 if a test or a widget failed.
# The venv is reused while its pins and pyproject.toml are unchanged (COMPAT_FRESH=1 rebuilds it; `rm -rf .compat`
# frees the disk: about 6 GB per env, PyPI's Linux torch wheels are the CUDA builds). One thread, no xdist.
set -euo pipefail

env_name=${1:-}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
host_python=${PYTHON:-python3}  # only reads pyproject.toml (tomllib: 3.11+)

# Versions -------------------------------------------------------------------------------------------------------
case "$env_name" in
  colab)
    python_version=3.12
    pins=(torch==2.9.1 torchvision==0.24.1 ipywidgets==7.7.1)
    ;;
  floors)
    read -r python_version < <("$host_python" -c '
import re, tomllib
spec = tomllib.load(open("pyproject.toml", "rb"))["project"]["requires-python"]
print(re.fullmatch(r">=\s*(3\.\d+)", spec.strip()).group(1))')
    mapfile -t pins < <("$host_python" -c '
import re, tomllib
for r in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    m = re.search(r"^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)", r)
    print(f"{m.group(1)}=={m.group(2)}")')
    ;;
  *)
    echo "usage: compat/run.sh colab|floors" >&2
    exit 2
    ;;
esac

# The test tools and the reference libraries, with the dev extra's ranges (not the Jupyter server, nbval/nbclient,
# pytest-xdist, ruff or playwright: nothing here runs notebooks, lints or drives a browser). The tools are required;
# each reference library is installed on its own if it can be with the pins (its comparison tests skip otherwise:
# e.g. vector-quantize-pytorch >= 1.32 needs torch >= 2.5, through torch-einops-utils).
dev_extra() {
  "$host_python" -c '
import re, sys, tomllib
wanted = set(sys.argv[1:])
for r in tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["dev"]:
    if re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() in wanted:
        print(r.split("#")[0].strip())' "$@"
}
mapfile -t tools < <(dev_extra pytest hypothesis nbformat jupytext)
mapfile -t references < <(dev_extra torchmetrics pycocoevalcap open_clip_torch vector-quantize-pytorch)

# Tests that need a Jupyter kernel (they execute notebooks), or that the declared Python floor cannot import.
ignore=(tests/browser tests/test_exercises_run.py)  # browser: Chromium + JupyterLab; exercises: every notebook
deselect=(tests/test_dev_machinery.py::test_wrong_solution_turns_execution_red_with_a_short_message)  # a kernel

# Interpreter ----------------------------------------------------------------------------------------------------
find_python() {  # python$1 from PATH if it runs, else pyenv's newest 3.X.*; COMPAT_PYTHON overrides
  local candidate
  if [[ -n "${COMPAT_PYTHON:-}" ]]; then echo "$COMPAT_PYTHON"; return; fi
  for candidate in "python$1" $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$1".*/bin/python"$1" 2>/dev/null | sort -V -r); do
    if "$candidate" -c 'import sys, venv' >/dev/null 2>&1; then command -v "$candidate"; return; fi
  done
  echo "compat $env_name: no working Python $1 (set COMPAT_PYTHON=/path/to/python$1)" >&2
  return 1
}
python=$(find_python "$python_version")

dir=.compat/$env_name
venv=$dir/venv
mkdir -p "$dir"
printf '%s\n' "${pins[@]}" > "$dir/constraints.txt"
stamp_text="$("$python" -VV) | ${pins[*]} | ${tools[*]} ${references[*]} | $(sha256sum pyproject.toml | cut -c1-16)"

# Install ----------------------------------------------------------------------------------------------------------
t0=$(date +%s)
if [[ "${COMPAT_FRESH:-0}" == 1 || ! -f "$venv/.compat-stamp" || "$(cat "$venv/.compat-stamp")" != "$stamp_text" ]]
then
  echo "compat $env_name: building $venv with $("$python" -V), ${pins[*]} (log: $dir/install.log)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  {
    "$venv/bin/python" -m pip install --upgrade pip
    "$venv/bin/python" -m pip install --prefer-binary -c "$dir/constraints.txt" "${pins[@]}" -e . "${tools[@]}"
  } > "$dir/install.log" 2>&1 || { tail -40 "$dir/install.log"; echo "compat $env_name: install FAILED"; exit 1; }
  : > "$venv/.compat-missing"
  for ref in "${references[@]}"; do
    ref_rc=0
    out=$("$venv/bin/python" -m pip install --prefer-binary -c "$dir/constraints.txt" "$ref" 2>&1) || ref_rc=$?
    printf '=== %s\n%s\n' "$ref" "$out" >> "$dir/install.log"
    if [[ $ref_rc -ne 0 ]]; then
      echo "$ref" >> "$venv/.compat-missing"
      echo "compat $env_name: $ref cannot be installed with these pins (its comparison tests will skip):"
      grep -E ' depends on ' <<< "$out" | sort -u | head -12 | sed 's/^/    /' || true
    fi
  done
  echo "$stamp_text" > "$venv/.compat-stamp"
else
  echo "compat $env_name: reusing $venv (COMPAT_FRESH=1 to rebuild)"
fi
t1=$(date +%s)

versions=$("$venv/bin/python" - <<'EOF'
import sys
from importlib.metadata import version
names = ["torch", "torchvision", "ipywidgets", "numpy", "matplotlib", "tqdm", "safetensors", "ipykernel", "ipython"]
print(f"python {sys.version.split()[0]}, " + ", ".join(f"{n} {version(n)}" for n in names))
EOF
)
missing=$(paste -sd, "$venv/.compat-missing" 2>/dev/null || true)
echo "compat $env_name: $versions${missing:+ (reference libraries not installable: $missing)}"

# Unit tests -------------------------------------------------------------------------------------------------------
if ! "$venv/bin/python" -c 'import tomllib' 2>/dev/null; then
  # tests/test_packaging.py imports tomllib (Python 3.11+) at the top: it cannot be collected on 3.10.
  ignore+=(tests/test_packaging.py)
  echo "compat $env_name: tests/test_packaging.py left out: it imports tomllib, which Python $python_version lacks"
fi
pytest_args=(tests -p no:cacheprovider -q -rfEs --junitxml="$dir/junit.xml")
for p in "${ignore[@]}"; do pytest_args+=(--ignore="$p"); done
for p in "${deselect[@]}"; do pytest_args+=(--deselect="$p"); done
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg TQDM_DISABLE=1 MMCOURSE_STRICT=1
export MMCOURSE_CACHE=$root/$dir/cache  # its own model cache: nothing trained under another torch is reused
# The shared models first, as `make test` does (a cold cache would train them inside the first test that needs one,
# whose printed output then has the training's lines first); trained under this env's torch, kept in its cache.
echo "compat $env_name: training the shared models unless cached (log: $dir/warm.log)"
test_rc=0
"$venv/bin/python" -m mmcourse.dev warm clip-tiny videobert-tiny > "$dir/warm.log" 2>&1 || test_rc=$?
[[ $test_rc -eq 0 ]] || { tail -20 "$dir/warm.log"; echo "compat $env_name: training the shared models FAILED"; }
t_warm=$(date +%s)
echo "compat $env_name: pytest ${pytest_args[*]} (log: $dir/pytest.log)"
"$venv/bin/python" -m pytest "${pytest_args[@]}" > "$dir/pytest.log" 2>&1 || test_rc=$?
t2=$(date +%s)
tail -n 30 "$dir/pytest.log" | sed -n '/short test summary/,$p'
counts=$("$venv/bin/python" - "$dir/junit.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("no results (see pytest.log)")
    sys.exit()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
print(f"{n['tests'] - n['failures'] - n['errors'] - n['skipped']} passed, {n['failures']} failed, "
      f"{n['errors']} errors, {n['skipped']} skipped")
EOF
)

# Widgets --------------------------------------------------------------------------------------------------------
widgets_rc=0
"$venv/bin/python" compat/widgets_check.py > "$dir/widgets.log" 2>&1 || widgets_rc=$?
t3=$(date +%s)
grep -E '^  (OK|FAIL)|^widgets' "$dir/widgets.log" || tail -20 "$dir/widgets.log"
widget_count=$(grep -E '^widgets: ' "$dir/widgets.log" | sed 's/^widgets: //' || true)

status=OK
[[ $test_rc -ne 0 || $widgets_rc -ne 0 ]] && status=FAILED
summary="compat $env_name $status: $versions | unit tests: $counts${missing:+ (without $missing)} | \
widgets: ${widget_count:-did not run} | \
install $((t1 - t0)) s, models $((t_warm - t1)) s, tests $((t2 - t_warm)) s, widgets $((t3 - t2)) s"
echo "$summary"
echo "$(date -u +%FT%TZ) $summary" >> .compat/summary.txt
[[ $status == OK ]]
