# Sourced by the GPU scripts (gpu_check.sh, gpu_chees.sh) after PLATFORM and PY are set: on a
# lent GPU machine, installs the wheels that its image lacks (.whl, ignored by git; how to fill
# it: gpu_check.sh's header) into /tmp/site, then prints the JAX and NumPyro versions and the
# devices. Fails (exit 1) when either step does.
if [ "$PLATFORM" = gpu ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
    nvidia-smi -L
fi
"$PY" -c "import jax, numpyro, arviz; print('jax', jax.__version__, 'numpyro', numpyro.__version__, jax.devices())" || exit 1
