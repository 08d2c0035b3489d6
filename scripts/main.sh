#!/usr/bin/env bash
# main.sh: the main job, from a fresh Debian machine:
#  1. install what is missing and build etch (build/etch);
#  2. train samples/mlp.etch on Fashion-MNIST with the compiled training
#     step (SGD, lr 0.01, momentum 0.9, batch 64, 10 epochs; EPOCHS=N to change);
#  3. build the dependency-free inference program from the trained weights
#     (embedded) and classify a test image with it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

etch=build/etch
data=/usr/share/datasets/fashion-mnist
out=out/mlp
epochs=${EPOCHS:-10}
mkdir -p "$out"

echo "== training samples/mlp.etch on Fashion-MNIST ($epochs epochs)"
$etch train samples/mlp.etch --data "$data" --epochs "$epochs" -o "$out"

echo "== standalone inference program with the trained weights embedded"
$etch build samples/mlp.etch -D B=1 --exe --embed-weights --weights "$out/Net.safetensors" -o "$out/infer"
ldd "$out/infer/Net"
$etch make-input samples/mlp.etch -D B=1 --idx "$data/t10k-images-idx3-ubyte.gz" --index 0 -o "$out/image0.npy"
"$out/infer/Net" "$out/image0.npy" "$out/logits0.npy"
classes=(T-shirt/top Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag "Ankle boot")
$etch show --argmax "$out/logits0.npy" | while read -r k; do
  echo "test image 0 classified as class $k (${classes[$k]}); its label is 9 (Ankle boot)"
done
