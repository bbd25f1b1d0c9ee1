"""The contract between the BEVFormer detector and a task head on the BEV feature B_t."""
from abc import ABCMeta, abstractmethod
from typing import Dict, List, Optional

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

    Args:
        loss_prefix (str, optional): prefix of this head's loss keys in the detector's loss
            dict (e.g. ``'seg.'``); default :attr:`default_loss_prefix`. Keys must stay unique
            across heads.
        init_cfg: mmengine init config.
    """

    #: data-sample field that receives :meth:`predict`'s per-sample result
    pred_field: str = ''
    #: loss-key prefix when the config does not set one
    default_loss_prefix: str = ''

    def __init__(self, loss_prefix: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        if not self.pred_field:
            raise TypeError(f'{type(self).__name__} must set the class attribute pred_field')
        self.loss_prefix = self.default_loss_prefix if loss_prefix is None else loss_prefix

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
