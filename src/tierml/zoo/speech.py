"""A keyword-spotting model over log-mel frames: a convolutional front-end followed by
bidirectional recurrent layers, the layout of Deep Speech 2 (Amodei et al., "Deep Speech 2:
End-to-End Speech Recognition in English and Mandarin", ICML 2016, arXiv:1512.02595, §3.1 and
§3.5), with LSTM cells (Hochreiter & Schmidhuber 1997; bidirectional as in Graves et al.,
"Speech Recognition with Deep Recurrent Neural Networks", ICASSP 2013) and an utterance-level
classifier over the Speech Commands task (Warden, "Speech Commands: A Dataset for
Limited-Vocabulary Speech Recognition", arXiv:1804.03209, 2018).

The input is ``features`` [B, T, 40]: T frames (10 ms hop, so 100 frames = 1 s) of 40 log-mel
filterbank energies. Both B and T are dynamic. The recurrent layers export as ONNX ``LSTM``
nodes that loop over time inside the runtime. At 100 frames: 76M MACs, 0.8M parameters.
The dynamo exporter still steps through the LSTMs frame by frame while tracing (torch 2.13),
so its export time grows with T: about 8 s at 16 frames, 25 s at 100 on 2 cores.
"""

from __future__ import annotations

import torch
import torch.nn as nn

N_MELS = 40  # log-mel filterbank bins, as in Warden 2018's reference front-end
NUM_CLASSES = 12  # Speech Commands: 10 keywords + "silence" + "unknown" (Warden 2018, §7)
# The widths and depths below are the zoo's choice, scaled down from Deep Speech 2 (§3.1,
# Table 2: 1-3 conv layers, up to 7 recurrent layers of 1760+ units) to a keyword spotter.
CONV_CHANNELS = 128
CONV_KERNEL = 5  # 5 frames = 50 ms of context per front-end layer
HIDDEN = 128  # LSTM hidden size per direction
RNN_LAYERS = 2


class ConvFrontEnd(nn.Sequential):
    """Two 1-D convolutions over time (Deep Speech 2 §3.1), each Conv1d → BatchNorm → ReLU.

    Both keep the number of frames ("same" padding, stride 1). Deep Speech 2 also strides in
    time (§3.5); here the recurrent layers see every frame, because torch's dynamo exporter
    keeps a dynamic time axis through ``nn.LSTM`` only when the LSTM's length is the input's
    own (a strided length ``(T - 1) // 2 + 1`` fails to export with torch 2.13).
    """

    def __init__(self, n_mels: int, channels: int) -> None:
        pad = CONV_KERNEL // 2
        super().__init__(
            nn.Conv1d(n_mels, channels, CONV_KERNEL, padding=pad, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(inplace=True),
            nn.Conv1d(channels, channels, CONV_KERNEL, padding=pad, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(inplace=True),
        )


class KeywordSpotter(nn.Module):
    """Frames → conv front-end → 2-layer bidirectional LSTM → mean over time → classifier."""

    def __init__(
        self,
        n_mels: int = N_MELS,
        channels: int = CONV_CHANNELS,
        hidden: int = HIDDEN,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.front_end = ConvFrontEnd(n_mels, channels)
        self.rnn = nn.LSTM(
            channels, hidden, num_layers=RNN_LAYERS, bidirectional=True, batch_first=True
        )
        self.classifier = nn.Linear(2 * hidden, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # the LSTM keeps torch's U(-1/sqrt(H), 1/sqrt(H)) initialisation

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # features: [B, T, 40]
        x = self.front_end(features.transpose(1, 2))  # [B, 128, T]
        x, _ = self.rnn(x.transpose(1, 2))  # [B, T, 256]: forward and backward states
        pooled = x.mean(dim=1)  # [B, 256]: one vector per utterance
        logits: torch.Tensor = self.classifier(pooled)  # [B, 12]
        return logits


def speech_lstm() -> KeywordSpotter:
    """Conv1d front-end (2 x 128, kernel 5) + 2-layer BiLSTM (128 per direction), 12 classes."""
    return KeywordSpotter()
