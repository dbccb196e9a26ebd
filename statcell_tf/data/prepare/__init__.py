"""Fields of view → single-cell crops in the OpenCell, BBBC021 or Allen Cell layout, streaming.

Input: a FOVS.csv table, one row per field of view. Columns named after the layout's channels
hold image paths (relative to the CSV's folder or absolute; TIFF, OME-TIFF or OME-Zarr, read by
`statcell_tf.data.fields`); ``<channel>_channel`` picks a channel of a multi-channel file (an
index, or a name from its metadata); optional ``nucleus_mask`` / ``cell_mask`` columns name
label images (CellProfiler, Cellpose, ...) used instead of the built-in segmentation. Every
other column is metadata, carried onto each crop of the field.

Or: OME-Zarr HCS plates (NGFF 0.4 / 0.5) and a plate map (one row per well: compound,
concentration, moa or any columns). `read_plates` turns each plate field into the FOVS row
above (`statcell_tf.data.hcs`: channel columns naming the field image and its channel, plate,
well, site, fov and the plate map's columns joined by well) and validates it with the same
`validate_fields` as a FOVS.csv, so plates and tables give the same fields, crops and resume.

Per field (one at a time, in worker processes with ``workers > 1``): read the channels →
max projection along z (``projection="max"``; ``"none"`` keeps 3D stacks for the Allen layout and
refuses them for the 2D layouts)
→ downsample by block mean → nuclei (`preprocess.segment_nuclei`, or the nucleus mask) →
cells (watershed of the cell channel seeded by the nuclei, or the cell mask) → crops centred
on each nucleus, following each paper's methods section:

- ``opencell`` (cytoself, Kobayashi et al. 2022): ``size``×``size`` crops (100) of the protein
  and nucleus channels, each min-max scaled to [0, 1], and the signed distance to the crop's
  own nucleus in [-1, 1] (`preprocess.fov_to_opencell_crops`); the paper's fields are
  z max-projected and downsampled ×2, the defaults here. Nuclei whose crop crosses the
  field's border are skipped. Written as ``crops_NNNNN_{pro,nuc,nucdist}.npy`` +
  ``crops_NNNNN_label.csv`` chunks (`statcell_tf.data.opencell`).
- ``bbbc021`` (VAE+, Lafarge et al. 2019): 68×68 crops centred on each nucleus, the channels
  in ``channels`` order, raw intensities in the input dtype; one ``.npy`` per crop under
  ``crops/chunk_NNNNN/`` + ``metadata.csv`` (`statcell_tf.data.bbbc021`).
- ``allencell`` (Integrated Cell, Johnson et al. 2017; Statistical Cell, Donovan-Maiye et al.
  2022): per cell, membrane, DNA and structure inside its cell mask, centred on the nuclear
  centroid, the cell's major axis along x and flipped so the intensity skew is positive
  (`preprocess.align_cell`), ``size``×``size`` (2D, or the whole z range in 3D); one
  OME-TIFF per cell (channels membrane, dna, structure, cell_mask, nucleus_mask; raw
  intensities) under ``cells/chunk_NNNNN/`` + ``manifest.csv``
  (`statcell_tf.data.allencell`). Cells touching the field's border, and cells that do not
  fit in the crop, are skipped. Training normalises (the papers' mode subtraction).

Streaming: finished fields are appended to the output in chunks (at most ``chunk_crops`` crops
or ``chunk_bytes`` bytes held), so memory does not grow with the number of fields. A chunk is
committed by one line in ``prepare_progress.jsonl``; ``resume`` skips the fields listed there
and removes chunk files a killed run left uncommitted. Per crop, quality columns ``qc_*`` are
recorded (`QC_MEASURES`) and ``qc`` rules drop crops, counted per rule in ``summary.csv``
(one row per field; empty fields say so there). ``montage/<group>.png`` shows random crops
per group.

Modules: `settings` (PrepareConfig, QC rules, output columns), `fovs` (FOVS.csv or plates → Field,
the --out check), `crops` (one field → crops), `writers` (chunks per layout; files from
`statcell_tf.data.layout_files`), `journal` (prepare_progress.jsonl), `run` (prepare_crops),
`montage`.
"""

from statcell_tf.data.prepare.crops import FieldResult, match_cells, process_field, segment_cells, segment_nuclei_3d
from statcell_tf.data.prepare.fovs import Field, check_out, read_fields, read_plates, validate_fields
from statcell_tf.data.prepare.journal import CONFIG_FILE, PROGRESS_FILE, pending_fields, read_progress
from statcell_tf.data.prepare.montage import MAX_MONTAGE_GROUPS, MONTAGE_DIR, write_montages
from statcell_tf.data.prepare.run import SUMMARY_FILE, PrepareSummary, prepare_crops
from statcell_tf.data.prepare.settings import (
    DEFAULT_DOWNSAMPLE,
    DEFAULT_GROUP,
    DEFAULT_SIZE,
    LAYOUT_CHANNELS,
    LAYOUTS,
    MASK_COLUMNS,
    PROJECTIONS,
    QC_MEASURES,
    NUMERIC_METADATA,
    REQUIRED_METADATA,
    PrepareConfig,
    QCRule,
    output_columns,
    parse_qc,
)

__all__ = [
    "CONFIG_FILE", "DEFAULT_DOWNSAMPLE", "DEFAULT_GROUP", "DEFAULT_SIZE", "LAYOUTS", "LAYOUT_CHANNELS",
    "MASK_COLUMNS", "MAX_MONTAGE_GROUPS", "NUMERIC_METADATA", "MONTAGE_DIR", "PROGRESS_FILE", "PROJECTIONS", "QC_MEASURES",
    "REQUIRED_METADATA", "SUMMARY_FILE", "Field", "FieldResult", "PrepareConfig", "PrepareSummary", "QCRule",
    "check_out", "match_cells", "output_columns", "parse_qc", "pending_fields", "prepare_crops",
    "process_field", "read_fields", "read_plates", "read_progress", "segment_cells", "segment_nuclei_3d", "validate_fields", "write_montages",
]
