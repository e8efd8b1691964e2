"""A short tour of tracejit's eager tensors, written exactly as PyTorch code would be.

Run: python examples/eager_demo.py
"""

import tracejit as torch


def main():
    torch.manual_seed(0)

    # Views share storage with their base and report PyTorch's strides.
    x = torch.arange(12.0).view(3, 4)
    col = x[:, 1]
    col += 100
    print("x after writing through a column view:\n", x)
    print("x.t() stride:", x.t().stride(), "| col storage offset:", col.storage_offset())

    # Type promotion follows PyTorch: int tensor + Python float -> float32.
    ints = torch.tensor([1, 2, 3])
    print("int tensor + 0.5 ->", ints + 0.5, "| dtype:", (ints + 0.5).dtype)

    # Broadcasting, reductions and indexing.
    w = torch.randn(4, 2)
    h = (x @ w).relu()
    print("relu(x @ w):", tuple(h.shape), "max per row:", h.max(dim=1).values)
    print("softmax rows sum to 1:", h.softmax(dim=1).sum(dim=1))
    print("elements of x above 105:", x[x > 105])

    # A tiny least-squares fit by gradient descent, written with tensor ops only.
    a = torch.linspace(-1, 1, 64).unsqueeze(1)
    target = 3 * a - 0.5
    coef = torch.zeros(2)
    for _ in range(200):
        pred = a * coef[0] + coef[1]
        err = pred - target
        grad = torch.stack([(2 * err * a).mean(), (2 * err).mean()])
        coef -= 0.5 * grad
    print("fitted slope and intercept (expect 3, -0.5):", coef)

    # Bad input gets an error that says what was wrong.
    try:
        torch.ones(2, 3) + torch.ones(4)
    except RuntimeError as e:
        print("broadcast error:", e)


if __name__ == "__main__":
    main()
