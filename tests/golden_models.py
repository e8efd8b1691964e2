"""The models whose traced IR text is kept as golden files in tests/golden/ (one module so that
the source lines recorded in the text stay stable)."""

import tracejit as tj

nn = tj.nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(self.fc1(x).relu()).log_softmax(dim=1)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        x = tj.nn.functional.max_pool2d(self.bn(self.conv(x)).relu(), 2)
        return self.fc(x.flatten(1))


class LSTMStep(nn.Module):
    """One time step of a one-layer LSTM (the recurrent cell a compiled model runs per token)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 8, batch_first=True)

    def forward(self, x):
        out, (h, c) = self.lstm(x.unsqueeze(1))
        return out.squeeze(1), h, c


def models():
    """name -> (model in eval mode, example input, dynamic dims)."""
    tj.manual_seed(0)
    encoder = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
    return {
        "lstm_step": (LSTMStep().eval(), tj.randn(3, 6), None),
        "mlp": (MLP().eval(), tj.randn(3, 8), {"x": {0: "N"}}),
        "cnn": (CNN().eval(), tj.randn(2, 1, 8, 8), None),
        "encoder_layer": (encoder.eval(), tj.randn(2, 5, 8), None),
    }


def traced(name):
    model, example, dims = models()[name]
    return model, example, tj.trace(model, example, dynamic_dims=dims)
