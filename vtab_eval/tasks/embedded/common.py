"""Shared machinery of the embedded (mini-VTAB) tfds builders.

Each builder turns a local source (a Debian package's files, a PyPI wheel's data, or a
procedure) into `train`, `validation` and `test` tfds splits, VTAB-1k style: the task
reads `train[:800]`, `validation[:200]` and all of `test`. Two configs: `full` (the real
suite) and `tiny` (a few examples per split, for tests and smoke runs).

Every builder drops exact duplicate images across and within splits (first occurrence
wins, in train, validation, test order), so no test image can appear in a training split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

SPLIT_ORDER = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class SplitSizes:
    """Examples per split; None means everything the source offers for that split."""

    train: int | None
    validation: int | None
    test: int | None

    def as_dict(self) -> dict[str, int | None]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


class EmbeddedConfig(tfds.core.BuilderConfig):
    def __init__(self, *, sizes: SplitSizes | None = None, **kwargs):
        super().__init__(**kwargs)
        self.sizes = sizes  # None: the builder's FULL_SIZES.


TINY_SIZES = SplitSizes(train=12, validation=6, test=12)


class MissingSourceError(RuntimeError):
    """A local source (Debian or PyPI package) is not installed."""


def require_path(path: str, debian_package: str) -> str:
    if not os.path.exists(path):
        raise MissingSourceError(
            f"{path} is missing: install the Debian package {debian_package} (apt-get install)"
        )
    return path


def require_module(module: str, pypi_package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingSourceError(
            f"Python module {module} is missing: pip install {pypi_package}"
        ) from e


def stable_order(keys: Iterable[str], salt: str) -> list[str]:
    """Keys in a pseudo-random order that depends only on each key (not on the others)."""
    return sorted(keys, key=lambda k: hashlib.sha256(f"{salt}:{k}".encode()).hexdigest())


def shared(examples: Iterable[dict]) -> dict[str, Iterator[dict]]:
    """One iterator dealt to all splits: each continues where the previous one stopped."""
    stream = iter(examples)
    return {split: stream for split in SPLIT_ORDER}


def image_digest(image: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes() + str(image.shape).encode()).digest()


def shared_images(sets: Mapping[str, Iterable[np.ndarray]]) -> dict[tuple[str, str], int]:
    """For named image sets (the upstream, the probes, each task split), every pair that
    holds the same image (by content hash), with how many: empty when all are apart."""
    digests = {name: {image_digest(image) for image in images} for name, images in sets.items()}
    names = sorted(digests)
    shared = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = len(digests[a] & digests[b])
            if common:
                shared[(a, b)] = common
    return shared


class EmbeddedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base class: subclasses set the class attributes and implement `_source_examples`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First embedded mini-VTAB release."}
    BUILDER_CONFIGS = [
        EmbeddedConfig(name="full", description="The embedded suite's sizes."),
        EmbeddedConfig(name="tiny", description="A few examples per split.", sizes=TINY_SIZES),
    ]
    DEFAULT_CONFIG_NAME = "full"

    FULL_SIZES: SplitSizes
    DESCRIPTION: str = ""

    def _features(self) -> dict:
        """The feature dict (`image` plus labels); subclasses override."""
        raise NotImplementedError

    def _source_examples(self, sizes: SplitSizes) -> dict[str, Iterator[dict]]:
        """Per split, examples as dicts of numpy values, `image` a uint8 array.

        The base class takes each split's size from its iterator after dropping
        duplicates, in train, validation, test order; splits may share one iterator
        (see `shared`), so that a finite source is dealt out without gaps. An endless
        source (a generator of random draws) needs a size for its split, not None.
        """
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict(self._features()),
        )

    @property
    def sizes(self) -> SplitSizes:
        return self.builder_config.sizes or self.FULL_SIZES

    def _split_generators(self, dl_manager):
        del dl_manager  # Local sources only: nothing is downloaded.
        sizes = self.sizes
        sources = self._source_examples(sizes)
        seen: set[bytes] = set()
        splits = {}
        # Materialised in split order so that dedup gives train precedence over test.
        for split in SPLIT_ORDER:
            wanted = sizes.as_dict()[split]
            kept, dropped = [], 0
            source = sources[split]
            for example in source:
                digest = image_digest(example["image"])
                if digest in seen:
                    dropped += 1
                    continue
                seen.add(digest)
                kept.append(example)
                if wanted is not None and len(kept) == wanted:
                    break
            if wanted is not None and len(kept) < wanted:
                raise RuntimeError(
                    f"{self.name}: source gave {len(kept)} unique {split} examples, {wanted} wanted"
                )
            if dropped:
                logging.info("%s: dropped %d duplicate images from %s", self.name, dropped, split)
            splits[split] = kept
        for source in {id(s): s for s in sources.values()}.values():
            if hasattr(source, "close"):
                source.close()  # Releases what a generator holds (e.g. a renderer).
        return {
            split: self._generate_examples(split, examples) for split, examples in splits.items()
        }

    def _generate_examples(self, split: str, examples: list[dict]):
        for i, example in enumerate(examples):
            yield f"{split}-{i:06d}", example
