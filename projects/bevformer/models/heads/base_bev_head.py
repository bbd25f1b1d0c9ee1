"""The contract between the BEVFormer detector and a task head on the BEV feature B_t."""
from abc import ABCMeta, abstractmethod
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.utils import OptMultiConfig


class BaseBEVHead(BaseModule, metaclass=ABCMeta):
    """A head that reads B_t ``(bs, bev_h * bev_w, C)`` and nothing else of the model.

    The detector (:class:`~projects.bevformer.models.detectors.BEVFormer`) treats every head
    alike: it calls :meth:`loss` in training and adds the returned losses under
    ``loss_prefix + key``, and calls :meth:`predict` at test time and stores each sample's
    result in the data-sample field :attr:`pred_field`. B_t's layout is the encoder's: flat
    index ``row * bev_w + col``, rows along LiDAR y, columns along x (``geometry/bev.py``).

    Subclasses set the class attributes :attr:`pred_field` and :attr:`default_loss_prefix`.
    The BEV geometry arguments are filled in by the detector from its BEV encoder, so a config
    states them once (on the encoder); a head config that states a different value is refused.

    Args:
        bev_h (int), bev_w (int): BEV grid size of B_t (rows along y, columns along x).
        embed_dims (int): channels C of B_t.
        pc_range (sequence of 6 floats): the BEV range (x_min, y_min, z_min, x_max, y_max,
            z_max) in metres of the LiDAR frame.
        loss_prefix (str, optional): prefix of this head's loss keys in the detector's loss
            dict (e.g. ``'seg.'``); default :attr:`default_loss_prefix`. Keys must stay unique
            across heads.
        init_cfg: mmengine init config.
    """

    #: data-sample field that receives :meth:`predict`'s per-sample result
    pred_field: str = ''
    #: loss-key prefix when the config does not set one
    default_loss_prefix: str = ''

    #: constructor arguments the detector fills in from its BEV encoder
    BEV_ARGS = ('bev_h', 'bev_w', 'embed_dims', 'pc_range')

    def __init__(self,
                 bev_h: int,
                 bev_w: int,
                 embed_dims: int,
                 pc_range: Sequence[float] = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0),
                 loss_prefix: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        if not self.pred_field:
            raise TypeError(f'{type(self).__name__} must set the class attribute pred_field')
        if len(pc_range) != 6:
            raise ValueError(f'{type(self).__name__}: pc_range must have 6 values, got '
                             f'{len(pc_range)}')
        self.bev_h, self.bev_w = int(bev_h), int(bev_w)
        self.embed_dims = int(embed_dims)
        self.loss_prefix = self.default_loss_prefix if loss_prefix is None else loss_prefix
        self.register_buffer('pc_range', torch.tensor(pc_range, dtype=torch.float32),
                             persistent=False)

    @abstractmethod
    def loss(self, bev_embed: Tensor, batch_data_samples: List) -> Dict[str, Tensor]:
        """Losses of a batch.

        Args:
            bev_embed (Tensor): (bs, bev_h * bev_w, C) B_t.
            batch_data_samples (list[Det3DDataSample]): bs samples with this head's ground truth.

        Returns:
            dict[str, Tensor]: losses (keys containing ``'loss'`` are summed by the runner).
        """

    @abstractmethod
    def predict(self, bev_embed: Tensor, batch_data_samples: List) -> List:
        """Predictions of a batch.

        Args:
            bev_embed (Tensor): (bs, bev_h * bev_w, C) B_t.
            batch_data_samples (list[Det3DDataSample]): bs samples.

        Returns:
            list: bs results, each stored by the detector in the sample's :attr:`pred_field`.
        """
