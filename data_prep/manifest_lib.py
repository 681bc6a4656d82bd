"""OUTPUT/manifest.json: what a conversion wrote and what it skipped.

The manifest is written last, from the statistics each shard writer stored
in OUTPUT/.shards/ (see `shard_files`), so the in-process converter and the
Beam pipeline write the same manifest for the same shards, and a resumed
conversion the same manifest as an uninterrupted one.
"""

import collections
import dataclasses
import os
from typing import Sequence

import chromagen_tf
from chromagen_tf import files
from chromagen_tf.data import records
from data_prep import convert_config
from data_prep import shard_files

TOOL_NAME = 'data_prep.make_tfrecords'


def skip_entry(
    source: shard_files.Source,
    reason: str,
    detail: str,
    config: convert_config.ConvertConfig,
    split: str | None,
) -> dict:
    """The manifest entry of one skipped input."""
    path = os.path.relpath(source.path, config.input_root)
    return {
        'key': source.key,
        'path': path.replace(os.sep, '/'),
        'split': split,
        'reason': reason,
        'detail': detail,
    }


def write(
    config: convert_config.ConvertConfig,
    sources: Sequence[shard_files.Source],
    listing_skips: Sequence[dict],
    all_shards: Sequence[shard_files.Shard],
    state: shard_files.ShardState,
) -> dict:
    """Writes the manifest of a finished conversion and returns it.

    Args:
      config: The conversion.
      sources: The inputs found by listing.
      listing_skips: Inputs already rejected while listing, as manifest
        entries.
      all_shards: Every planned shard; all must be complete.
      state: The output folder's bookkeeping, holding the statistics
        (records, bytes and skipped entries) of each shard.

    Returns:
      The manifest, as written to OUTPUT/manifest.json.
    """
    splits = {}
    skipped = list(listing_skips)
    for split in records.SPLITS:
        entries = []
        for shard in (shard for shard in all_shards if shard.split == split):
            stats = state.stats(shard)
            entries.append(
                {
                    'name': shard.name,
                    'inputs': len(shard.sources),
                    'records': stats['records'],
                    'bytes': stats['bytes'],
                }
            )
            skipped.extend(stats['skipped'])
        inputs = sum(entry['inputs'] for entry in entries)
        record_count = sum(entry['records'] for entry in entries)
        splits[split] = {
            'inputs': inputs,
            'records': record_count,
            'skipped': inputs - record_count,
            'bytes': sum(entry['bytes'] for entry in entries),
            'shards': entries,
        }
    counts = collections.Counter(skip['reason'] for skip in skipped)
    manifest = {
        'tool': TOOL_NAME,
        'version': chromagen_tf.__version__,
        'schema_version': records.SCHEMA_VERSION,
        'config': dataclasses.asdict(config),
        'inputs_found': len(sources) + len(listing_skips),
        'splits': splits,
        'bytes_written': sum(info['bytes'] for info in splits.values()),
        'skipped_counts': dict(sorted(counts.items())),
        'skipped': skipped,
    }
    files.write_json_atomically(
        records.manifest_path(config.output_dir), manifest
    )
    return manifest


def summary_lines(manifest: dict) -> list[str]:
    """A short human-readable closing summary of a manifest."""
    lines = []
    for split in records.SPLITS:
        info = manifest['splits'][split]
        lines.append(
            f'{split}: {info["records"]} records in '
            f'{len(info["shards"])} shards, {info["bytes"]} bytes'
        )
    counts = manifest['skipped_counts']
    skipped = ', '.join(f'{reason}={count}' for reason, count in counts.items())
    lines.append(
        f'skipped: {sum(counts.values())}'
        + (f' ({skipped})' if skipped else '')
    )
    return lines
