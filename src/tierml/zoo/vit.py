"""ViT-Ti/16: Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
Recognition at Scale", ICLR 2021 (arXiv:2010.11929), at the "Tiny" width of Touvron et al.,
"Training data-efficient image transformers & distillation through attention" (DeiT), ICML
2021 (arXiv:2012.12877), Table 1, whose initialisation it also follows.

Pre-norm encoder blocks (§3.1, Eq. 2-3) with ``nn.MultiheadAttention``, as in torchvision's
``vit_b_16``; the class token's final state feeds the classifier. The learned position table
covers the 14x14 patch grid of a 224x224 image; other sizes interpolate it in 2-D, bicubic,
as the paper does when fine-tuning at a new resolution (§3.2). At 224x224: 1.26 GMACs, 5.7M
parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 1000  # ILSVRC-2012
IMAGE_SIZE = 224  # the resolution the position table is laid out for
PATCH = 16  # 16x16 patches (the "/16" of ViT-Ti/16)
D_MODEL = 192  # DeiT-Ti: embedding dimension
DEPTH = 12  # encoder blocks
N_HEADS = 3  # 64 dimensions per head
MLP_RATIO = 4  # hidden layer of the MLP: 4 x 192 = 768
LN_EPS = 1e-6  # the reference implementations' LayerNorm epsilon
INIT_STD = 0.02  # truncated-normal std of linear weights, position table and class token


class PatchEmbedding(nn.Module):
    """Split the image into 16x16 patches and project each linearly (§3.1, Eq. 1), as one
    16x16 convolution with stride 16."""

    def __init__(self, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, H, W]
        x = self.proj(x)  # [B, D, H/16, W/16]
        return x.flatten(2).transpose(1, 2)  # [B, N, D], N = HW / 256 patches in raster order


class MLP(nn.Module):
    """Two layers with a GELU non-linearity (§3.1)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) GELU
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, N+1, D]
        out: torch.Tensor = self.fc2(self.act(self.fc1(x)))  # [B, N+1, 4D] → [B, N+1, D]
        return out


class EncoderBlock(nn.Module):
    """z' = MSA(LN(z)) + z; z = MLP(LN(z')) + z' (Eq. 2-3)."""

    def __init__(self, dim: int, n_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = nn.MultiheadAttention(dim, n_heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = MLP(dim, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, N+1, D]
        y = self.ln_1(x)
        y, _ = self.attn(y, y, y, need_weights=False)  # [B, N+1, D]
        x = x + y
        x = x + self.mlp(self.ln_2(x))  # [B, N+1, D]
        return x


class VisionTransformer(nn.Module):
    def __init__(
        self,
        image_size: int = IMAGE_SIZE,
        patch: int = PATCH,
        dim: int = D_MODEL,
        depth: int = DEPTH,
        n_heads: int = N_HEADS,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.patch = patch
        self.grid = image_size // patch  # 14 patches per side at 224
        self.patch_embed = PatchEmbedding(dim, patch)
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))  # x_class
        self.pos_embed = nn.Parameter(torch.empty(1, 1 + self.grid**2, dim))  # E_pos
        self.blocks = nn.Sequential(
            *(EncoderBlock(dim, n_heads, MLP_RATIO * dim) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.head = nn.Linear(dim, num_classes)
        # DeiT's initialisation (nn.MultiheadAttention keeps its Xavier-uniform in_proj)
        nn.init.trunc_normal_(self.cls_token, std=INIT_STD)
        nn.init.trunc_normal_(self.pos_embed, std=INIT_STD)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=INIT_STD)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def position_table(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """E_pos for a grid_h x grid_w patch grid: [1, 1 + grid_h grid_w, D]."""
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        dim = patch_pos.shape[-1]
        table = patch_pos.reshape(1, self.grid, self.grid, dim).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        patch_pos = table.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, H, W]
        # H and W are static in every export: the grid size is a Python int
        grid_h, grid_w = int(x.shape[2]) // self.patch, int(x.shape[3]) // self.patch
        x = self.patch_embed(x)  # [B, N, D]
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # [B, 1, D]
        x = torch.cat([cls, x], dim=1) + self.position_table(grid_h, grid_w)  # [B, N+1, D]
        x = self.blocks(x)  # [B, N+1, D]
        x = self.norm(x[:, 0])  # [B, D]: the class token's final state, z_L^0 (Eq. 4)
        logits: torch.Tensor = self.head(x)  # [B, 1000]
        return logits


def vit() -> VisionTransformer:
    """ViT-Ti/16 (12 blocks, width 192, 3 heads, MLP 768): 1.26 GMACs, 5.7M parameters."""
    return VisionTransformer()
