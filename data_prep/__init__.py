"""Offline data preparation: photos or COCO -> sharded Lab TFRecords."""
