"""SCALE losses, one module each: InfoNCE (Eqs. 2-4), MCM (Eq. 6), SET (Eq. 7)."""
from scale_toolkit.model.losses.infonce import infonce_rows, symmetric_infonce
from scale_toolkit.model.losses.mcm import mcm_loss, mcm_terms
from scale_toolkit.model.losses.set_loss import set_loss

__all__ = ["infonce_rows", "symmetric_infonce", "mcm_loss", "mcm_terms", "set_loss"]
