#!/usr/bin/env bash
# The seed scenario, one party per process, with the commands a real deployment uses (docs/tutorial.md).
# INSECURE: the node runs in a simulated enclave. Everything is written under ./work, made anew at each run (a
# finished job's node state would otherwise serve that finished job again, and `job init` keeps an existing job).
set -euo pipefail
cd "$(dirname "$0")"
command -v enclavefl >/dev/null || {
  echo "run.sh: enclavefl is not on PATH; from the repository root: make setup && . .venv/bin/activate" >&2
  exit 2
}
PORT="${PORT:-7443}"   # PORT=0 picks a free port
rm -rf work && mkdir work && cd work
cp ../task.py .

# 1. everyone makes a key; the data owners send their certificates to the model owner
for who in bob alice model-owner; do
  [ -f "keys/$who.key" ] || enclavefl data-owner keygen --name "$who" --out keys
done
# 2. the model owner writes the initial model and the job spec (the data owners write their own data files)
python ../make_data.py .
enclavefl job init --name seed-bob-alice --model init.safetensors \
  --owner bob=keys/bob.pem --owner alice=keys/alice.pem --model-owner-cert keys/model-owner.pem \
  --rounds 10 --min-contributions 2 --local-steps 5 --lr 0.1 --no-weighted --deadline 120 --out job.toml
# 3. the node operator's simulated platform, and the policy every owner checks the node against
enclavefl node policy --platform-dir platform --out policy.toml

# 4. start the node and the two data owners (each would run on its own machine)
rm -f node.addr
enclavefl node serve --job job.toml --tee insecure-simulation --platform-dir platform --port "$PORT" \
  --port-file node.addr > node.log 2>&1 &
NODE_PID=$!
trap 'kill $NODE_PID ${BOB_PID:-} ${ALICE_PID:-} 2>/dev/null || true' EXIT
while [ ! -f node.addr ]; do sleep 0.2; kill -0 $NODE_PID || { cat node.log; exit 1; }; done
NODE="$(cat node.addr)"
for who in bob alice; do
  enclavefl data-owner run --node "$NODE" --job job.toml --policy policy.toml --task task.py:TASK \
    --data "$who.safetensors" --key "keys/$who.key" --cert "keys/$who.pem" > "$who.log" 2>&1 &
  if [ "$who" = bob ]; then BOB_PID=$!; else ALICE_PID=$!; fi
done

# 5. the model owner: submit the initial model, watch the rounds, download the verified result
MO=(--node "$NODE" --job job.toml --policy policy.toml --key keys/model-owner.key --cert keys/model-owner.pem)
enclavefl job submit "${MO[@]}" --model init.safetensors
enclavefl job watch "${MO[@]}"
enclavefl job download "${MO[@]}" --out final.safetensors
wait $BOB_PID $ALICE_PID $NODE_PID

# 6. anyone holding the policy, the job and the files: the model came from an attested enclave running this job
enclavefl receipts verify final.receipts.json --policy policy.toml --job job.toml --model final.safetensors
echo "--- bob's own view (never sent):"; grep "local losses" bob.log | tail -2
echo "logs: work/node.log work/bob.log work/alice.log; receipts: work/final.receipts.json"
