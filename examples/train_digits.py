"""Train a small CNN on scikit-learn's handwritten digits (8x8 images) with tracejit.

Written exactly as PyTorch code (`import tracejit as torch`): Dataset/DataLoader, nn.Module,
Adam, a tqdm progress bar. Prints held-out accuracy and a confusion summary, and saves the
weights (safetensors, no pickle). Then exports the model: `torch.script` traces, freezes and
compiles it, `.save` writes `digits.tj`, the standalone `tracejit-run` runs that file on the
held-out images in a separate process, and its predictions are compared with eager ones.

Run: python examples/train_digits.py [--epochs 15] [--out digits_cnn.safetensors] [--model digits.tj]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits
from tqdm import tqdm

import tracejit as torch
import tracejit.nn as nn
import tracejit.nn.functional as F
from tracejit.utils.data import DataLoader, TensorDataset, random_split


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn = nn.BatchNorm2d(32)
        self.fc1 = nn.Linear(32 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, 10)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 16 x 4 x 4
        x = F.max_pool2d(F.relu(self.bn(self.conv2(x))), 2)  # 32 x 2 x 2
        x = self.drop(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


def load_data(seed):
    digits = load_digits()  # read from files shipped inside scikit-learn: no network
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target, dtype=torch.int64)
    full = TensorDataset(images, labels)
    n_test = len(full) // 5
    return random_split(full, [len(full) - n_test, n_test], generator=torch.Generator().manual_seed(seed))


def evaluate(model, loader):
    model.eval()
    preds, targets = [], []
    with torch.no_grad():
        for x, y in loader:
            preds.append(model(x).argmax(dim=1))
            targets.append(y)
    model.train()
    return torch.cat(preds), torch.cat(targets)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="digits_cnn.safetensors")
    ap.add_argument("--model", default="digits.tj", help="where to write the exported model file")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    train_set, test_set = load_data(args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(args.seed))
    test_loader = DataLoader(test_set, batch_size=256)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    loss_fn = nn.CrossEntropyLoss()

    start = time.perf_counter()
    for epoch in range(args.epochs):
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1:2d}/{args.epochs}", leave=False)
        for x, y in bar:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        sched.step()
    elapsed = time.perf_counter() - start

    pred, target = evaluate(model, test_loader)
    acc = (pred == target).float().mean().item()
    print(f"trained {args.epochs} epochs on {len(train_set)} images in {elapsed:.1f}s")
    print(f"held-out accuracy: {acc * 100:.2f}% on {len(test_set)} images")
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (target.numpy(), pred.numpy()), 1)
    print("confusion (rows: true digit, cols: predicted):")
    print("      " + " ".join(f"{c:3d}" for c in range(10)))
    for r in range(10):
        print(f"  {r:2d}: " + " ".join(f"{v:3d}" for v in confusion[r]))
    worst = [(confusion[r].sum() - confusion[r, r], r) for r in range(10)]
    errs, digit = max(worst)
    print(f"most confused digit: {digit} ({errs} of {confusion[digit].sum()} wrong)")
    torch.save(model.state_dict(), args.out)
    print(f"saved weights to {args.out}")
    export_and_run(model, test_set, args.model)
    return acc


def export_and_run(model, test_set, path):
    """Script the trained model, save it as one file, run that file with `tracejit-run` in a new process."""
    model.eval()
    images = torch.stack([test_set[i][0] for i in range(len(test_set))])
    start = time.perf_counter()
    scripted = torch.script(model, images[:8], dynamic_dims={"x": {0: "N"}})
    info = scripted.save(path)
    print(f"exported {path} in {time.perf_counter() - start:.2f}s: {info}")
    with torch.no_grad():
        eager = model(images).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        x_path, y_path = os.path.join(tmp, "x.npy"), os.path.join(tmp, "logits.npy")
        np.save(x_path, images.numpy())
        exe = shutil.which("tracejit-run")
        cmd = [exe] if exe else [sys.executable, "-m", "tracejit.runtime"]
        cmd += [path, "--input", f"x={x_path}", "--output", y_path]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
        logits = np.load(y_path)
    same = (logits.argmax(1) == eager.argmax(1)).mean()
    print(f"tracejit-run {os.path.basename(path)} on {len(images)} images: {wall * 1e3:.0f} ms for the whole process; "
          f"predictions equal to eager on {same * 100:.1f}% of images, largest logit difference "
          f"{np.abs(logits - eager).max():.2e}")


if __name__ == "__main__":
    main()
