"""ImageNet-1k class order: folders named by WordNet id keep their ImageNet index.

The standard order of the 1000 ILSVRC-2012 classes is the sorted list of their WordNet ids
(n01440764 = 0 tench, ..., n02123045 = 281 tabby, ..., n15075141 = 999 toilet tissue), the
order every ImageNet classifier's logits follow. It is read from timm's copy
(``timm/data/_info/imagenet_synsets.txt``) with the readable names beside it
(``imagenet_synset_to_lemma.txt``), not a hand-kept list. A tree with only some wnid folders
(an Imagenette-style subset of ``val/``) is labelled by those indices, so a 1000-class model
is scored on the classes present.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from rankrobust.errors import ConfigError

__all__ = ["class_index", "imagenet_lemmas", "imagenet_wnids", "is_wnid", "readable_classes"]

WNID = re.compile(r"^n\d{8}$")
N_CLASSES = 1000


def _timm_text(name: str) -> str:
    from importlib.resources import files

    try:
        return (files("timm") / "data" / "_info" / name).read_text()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise ConfigError(
            f"ImageNet class order: timm's {name} is not available ({err}); install timm "
            "(pip install timm==1.0.9, a dependency of rankrobust)."
        ) from err


@cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in index order."""
    wnids = tuple(_timm_text("imagenet_synsets.txt").split())
    assert len(wnids) == N_CLASSES and list(wnids) == sorted(wnids), "timm's synset list changed"
    return wnids


@cache
def imagenet_lemmas() -> dict[str, str]:
    """wnid -> its first lemma ("n02123045" -> "tabby"), for the 1000 classes."""
    wanted = set(imagenet_wnids())
    out = {}
    for line in _timm_text("imagenet_synset_to_lemma.txt").splitlines():
        wnid, _, lemma = line.partition("\t")
        if wnid in wanted:
            out[wnid] = lemma.split(",")[0].strip()
    return out


def is_wnid(name: str) -> bool:
    return bool(WNID.match(str(name)))


def readable_classes() -> tuple[str, ...]:
    """The 1000 class names in index order: their first lemma ('tabby'); a name shared by two
    classes (crane, maillot) gets its wnid: 'crane (n02012849)'."""
    lemmas = imagenet_lemmas()
    names = [lemmas.get(w, w) for w in imagenet_wnids()]
    twice = {n for n in names if names.count(n) > 1}
    return tuple(
        f"{n} ({w})" if n in twice else n for n, w in zip(names, imagenet_wnids(), strict=True)
    )


def class_index(folders: Sequence[str], num_classes: int, where: str) -> list[int] | None:
    """The label of each class folder (given sorted), or None when labels stay 0..len-1.

    - num_classes == 1000 and every folder a wnid of ImageNet-1k: each folder's ImageNet index
      (all 1000 or a subset; for all 1000 this is the sorted order, as ImageFolder assigns);
    - num_classes == 1000 and a folder that is not such a wnid: ConfigError naming it;
    - otherwise: None (the sorted folder order; the caller checks the count).
    """
    if num_classes != N_CLASSES:
        return None
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    bad = [f for f in folders if f not in index]
    if bad:
        why = "is not a WordNet id" if not is_wnid(bad[0]) else "is not one of ImageNet-1k's"
        raise ConfigError(
            f"{where}: class folder '{bad[0]}' {why} ({len(bad)} such folder(s), e.g. "
            f"{bad[:3]}), but the model has 1000 classes (dataset.num_classes=1000), whose "
            "labels are the ImageNet-1k classes in WordNet id order. Name each folder by its "
            "wnid (e.g. val/n02123045/ for tabby cat; the list: timm/data/_info/"
            "imagenet_synsets.txt), or set dataset.num_classes to the number of folders for a "
            "model trained on exactly these classes."
        )
    return [index[f] for f in folders]
