"""Engine plumbing shared by every project package and the tools.

Importing it installs, for every mmengine run in the process:

- safe and atomic checkpoints on torch >= 2.6, and a ``CheckpointHook`` that writes the
  new checkpoint before it removes old ones (:mod:`.checkpoint`);
- strict checkpoint loading unless ``load_partial = True``, and clear ``--resume`` errors
  (:mod:`.loading`);
- a restricted unpickler for every ``.pkl`` read through ``mmengine.load`` (info files,
  results) (:mod:`.safe_pickle`);

and registers a model wrapper that runs DDP on CPU as well as GPU (:mod:`.dist`), the
CPU autocast optimizer wrapper (:mod:`.amp`), and the hooks that stop at non-finite losses
(:mod:`.finite`) and restore RNG states on resume (:mod:`.rng`).
"""
from .amp import CPUAutocastOptimWrapper
from .checkpoint import (SAFE_CHECKPOINT_GLOBALS, atomic_save_checkpoint, atomic_write_bytes,
                         install_checkpoint_safety, remove_stale_temp_files,
                         safe_load_checkpoint)
from .config_check import (StrictDictAction, add_reliability_hooks, check_config_keys,
                           misspelled_keys)
from .dist import DeviceAwareDDP, init_dist_auto
from .finite import NonFiniteCheckHook, NonFiniteLossError, sample_tokens
from .loading import (CheckpointMismatchError, check_resumable, check_same_model,
                      find_resume_checkpoint, install_loading_checks, load_state_dict_checked,
                      read_checkpoint)
from .rng import RNGStateHook, get_rng_state, set_rng_state
from .safe_pickle import (SafePickleHandler, SafeUnpickler, UnsafePickleError,
                          install_pickle_safety, safe_pickle_load)

install_checkpoint_safety()
install_loading_checks()
install_pickle_safety()

__all__ = [
    'CPUAutocastOptimWrapper', 'SAFE_CHECKPOINT_GLOBALS', 'atomic_save_checkpoint',
    'atomic_write_bytes', 'install_checkpoint_safety', 'remove_stale_temp_files',
    'safe_load_checkpoint', 'StrictDictAction', 'add_reliability_hooks', 'check_config_keys',
    'misspelled_keys', 'DeviceAwareDDP', 'init_dist_auto', 'NonFiniteCheckHook',
    'NonFiniteLossError', 'sample_tokens', 'CheckpointMismatchError', 'check_resumable',
    'check_same_model',
    'find_resume_checkpoint', 'install_loading_checks', 'load_state_dict_checked',
    'read_checkpoint', 'RNGStateHook', 'get_rng_state', 'set_rng_state', 'SafePickleHandler',
    'SafeUnpickler', 'UnsafePickleError', 'install_pickle_safety', 'safe_pickle_load'
]
