"""The `rename` load option: a project's own tensor names mapped to PyTorch's before the modules are recognised.

    rnnfast.load("enc.npz", rename={"enc_w_ih": "weight_ih_l0", "enc_w_hh": "weight_hh_l0",
                                    "enc_b_ih": "bias_ih_l0", "enc_b_hh": "bias_hh_l0"})
    rnnfast.load("model.pt", rename={"encoder.gru_": "encoder.rnn."})     # a prefix: encoder.gru_weight_ih_l0 ...
    rnnfast run model.pt --rename enc_w_ih=weight_ih_l0 --rename enc_w_hh=weight_hh_l0 ...

Rule: each OLD=NEW replaces OLD at the start of a tensor name, so an exact name is renamed whole and a prefix renames
every name it starts; where several OLD start one name, the longest wins; each name is renamed at most once (NEW is
not looked up again). Refused by name: an OLD that starts no tensor name (a misspelt mapping would otherwise change
nothing, silently), and two tensors that end up with one name. Names no mapping touches stay as they are; every
tensor is then used or refused by name as without the option (see `ignore`)."""
from __future__ import annotations

from ...errors import FormatError


def check_rename(rename, where: str) -> dict:
    """The mapping as {OLD: NEW} from a dict or a list of "OLD=NEW" strings (what --rename gives)."""
    if rename is None:
        return {}
    if isinstance(rename, (list, tuple)):
        pairs = {}
        for item in rename:
            old, sep, new = str(item).partition("=")
            if not sep or not old or not new:
                raise ValueError(f"{where}: rename entry {item!r}: expected OLD=NEW")
            pairs[old] = new
        rename = pairs
    if not isinstance(rename, dict) or not all(isinstance(k, str) and k and isinstance(v, str) and v
                                               for k, v in rename.items()):
        raise ValueError(f"{where}: rename must map non-empty names to non-empty names ({{'enc_w_ih': "
                         f"'weight_ih_l0'}}), got {rename!r}")
    return dict(rename)


def renamed(name: str, rename: dict) -> str:
    olds = [old for old in rename if name.startswith(old)]
    if not olds:
        return name
    old = max(olds, key=len)
    return rename[old] + name[len(old):]


def apply_rename(tensors: dict, rename: dict, where: str) -> tuple:
    """(renamed tensors, {new name: old name} for messages)."""
    if not rename:
        return tensors, {}
    unused = [old for old in rename if not any(k.startswith(old) for k in tensors)]
    if unused:
        raise FormatError(f"{where}: rename {unused} matches no tensor name; the file's names are "
                          f"{sorted(tensors)[:12]}{' ...' if len(tensors) > 12 else ''}")
    out, was = {}, {}
    for key, value in tensors.items():
        new = renamed(key, rename)
        if new in out:
            raise FormatError(f"{where}: rename gives two tensors the name {new!r}: {was.get(new, new)!r} and "
                              f"{key!r}")
        out[new] = value
        if new != key:
            was[new] = key
    return out, was
