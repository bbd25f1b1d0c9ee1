"""Official BEVFormer v1 checkpoints -> our modules.

The released checkpoints (fundamentalvision/BEVFormer, v1 code at 2c889a3) hold
``img_backbone.*`` (mmdet ResNet), ``img_neck.*`` (mmdet FPN) and ``pts_bbox_head.*``
(``BEVFormerHead`` with a ``PerceptionTransformer``). Ours splits the same weights into
``bev_encoder.*`` (BEV queries, positional encoding, camera / level embeddings, can_bus MLP and
the encoder layers) and ``heads.det.*`` (object queries, reference points, decoder, branches).
Two things change besides names:

- the last Linear of every regression branch is re-expressed in our box code
  (:func:`~projects.bevformer.geometry.box_coding.code_from_mmdet3d_v017`: sizes swapped,
  heading (sin, cos) of ``-yaw - pi/2`` -> of ``yaw``), which is exact;
- ``transformer.level_embeds`` always has 4 rows in the original, whatever the number of
  feature levels; only the rows of the levels that exist are kept (the others never receive
  a gradient), and the non-trainable ``code_weights`` parameter is dropped (ours is a
  buffer set from the config).

Use :func:`convert_official_state_dict`; ``tools/model_converters/bevformer_official_to_mm.py``
is the command line.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

from torch import Tensor

from ..geometry.box_coding import CODE_SIZE, code_from_mmdet3d_v017

_HEAD = r'pts_bbox_head\.'
_TF = _HEAD + r'transformer\.'
# (official key pattern, our key template); the first full match wins.
KEY_RULES: List[Tuple[str, str]] = [
    (r'(img_backbone\..+)', r'\1'),
    (r'(img_neck\..+)', r'\1'),
    (_HEAD + r'bev_embedding\.(.+)', r'bev_encoder.bev_embedding.\1'),
    (_HEAD + r'positional_encoding\.(.+)', r'bev_encoder.positional_encoding.\1'),
    (_HEAD + r'query_embedding\.(.+)', r'heads.det.query_embedding.\1'),
    (_HEAD + r'(cls_branches|reg_branches)\.(.+)', r'heads.det.\1.\2'),
    (_TF + r'reference_points\.(.+)', r'heads.det.reference_points.\1'),
    (_TF + r'(level_embeds|cams_embeds)', r'bev_encoder.\1'),
    (_TF + r'can_bus_mlp\.(0|2)\.(.+)', r'bev_encoder.can_bus_mlp.\1.\2'),
    (_TF + r'can_bus_mlp\.norm\.(.+)', r'bev_encoder.can_bus_mlp.4.\1'),
    (_TF + r'encoder\.layers\.(\d+)\.attentions\.0\.(.+)', r'bev_encoder.layers.\1.self_attn.\2'),
    (_TF + r'encoder\.layers\.(\d+)\.attentions\.1\.(.+)', r'bev_encoder.layers.\1.cross_attn.\2'),
    (_TF + r'encoder\.layers\.(\d+)\.ffns\.0\.(.+)', r'bev_encoder.layers.\1.ffn.\2'),
    (_TF + r'encoder\.layers\.(\d+)\.norms\.(.+)', r'bev_encoder.layers.\1.norms.\2'),
    (_TF + r'decoder\.layers\.(\d+)\.attentions\.0\.(.+)',
     r'heads.det.decoder.layers.\1.self_attn.\2'),
    (_TF + r'decoder\.layers\.(\d+)\.attentions\.1\.(.+)',
     r'heads.det.decoder.layers.\1.cross_attn.\2'),
    (_TF + r'decoder\.layers\.(\d+)\.ffns\.0\.(.+)', r'heads.det.decoder.layers.\1.ffn.\2'),
    (_TF + r'decoder\.layers\.(\d+)\.norms\.(.+)', r'heads.det.decoder.layers.\1.norms.\2'),
]
#: Official keys with no counterpart: the head's frozen ``code_weights`` parameter.
DROPPED_KEYS = ('pts_bbox_head.code_weights', )
_COMPILED = [(re.compile(p), t) for p, t in KEY_RULES]
_REG_LAST = re.compile(r'heads\.det\.reg_branches\.\d+\.(\d+)\.(weight|bias)')


def official_key_to_ours(key: str) -> Optional[str]:
    """Our state-dict key for an official one, or None when no rule maps it."""
    for pattern, template in _COMPILED:
        match = pattern.fullmatch(key)
        if match:
            return match.expand(template)
    return None


def is_box_code_layer(key: str, tensor: Tensor) -> bool:
    """Whether ``key`` (ours) is the code-producing Linear of a regression branch."""
    return bool(_REG_LAST.fullmatch(key)) and tensor.shape[0] == CODE_SIZE


def num_feature_levels_of(state_dict: Mapping[str, Tensor]) -> int:
    """Feature levels fed to the encoder = outputs of the official FPN (one conv each)."""
    convs = {k.split('.')[2] for k in state_dict
             if re.fullmatch(r'img_neck\.fpn_convs\.\d+\.conv\.weight', k)}
    if not convs:
        raise KeyError('official checkpoint has no img_neck.fpn_convs.*.conv.weight: cannot '
                       'tell the number of feature levels (pass num_feature_levels)')
    return len(convs)


def convert_official_state_dict(
        state_dict: Mapping[str, Tensor],
        num_feature_levels: Optional[int] = None) -> Tuple[Dict[str, Tensor], List[str]]:
    """Map an official BEVFormer v1 state dict onto our ``BEVFormer`` detector.

    Args:
        state_dict (Mapping[str, Tensor]): the official ``state_dict`` (``img_backbone.*``,
            ``img_neck.*``, ``pts_bbox_head.*``).
        num_feature_levels (int, optional): levels of our encoder; default: the number of
            FPN outputs in the checkpoint.

    Returns:
        tuple[dict, list[str]]: our state dict (official order) and notes on what changed
        besides names.

    Raises:
        KeyError: official keys that no rule maps, all listed.
    """
    unmapped = [k for k in state_dict
                if k not in DROPPED_KEYS and official_key_to_ours(k) is None]
    if unmapped:
        raise KeyError(f'{len(unmapped)} official key(s) have no counterpart in our BEVFormer '
                       f'(projects/bevformer/models/official.py): {unmapped}')
    levels = num_feature_levels_of(state_dict) if num_feature_levels is None \
        else num_feature_levels
    out: Dict[str, Tensor] = OrderedDict()
    notes: List[str] = []
    for key, value in state_dict.items():
        if key in DROPPED_KEYS:
            notes.append(f'dropped {key} (a frozen constant; ours comes from the config: '
                         f'{[round(float(v), 4) for v in value.flatten()]})')
            continue
        new_key = official_key_to_ours(key)
        if new_key == 'bev_encoder.level_embeds' and value.shape[0] != levels:
            if value.shape[0] < levels:
                raise ValueError(f'{key} has {value.shape[0]} rows but the model uses '
                                 f'{levels} feature levels')
            notes.append(f'{key}: kept the first {levels} of {value.shape[0]} rows (the '
                         f'levels that exist)')
            value = value[:levels]
        if is_box_code_layer(new_key, value):
            value = code_from_mmdet3d_v017(value.transpose(0, -1)).transpose(0, -1) \
                if value.dim() == 2 else code_from_mmdet3d_v017(value)
            notes.append(f'{key}: rows re-expressed in our box code')
        out[new_key] = value.clone()
    return out, notes
