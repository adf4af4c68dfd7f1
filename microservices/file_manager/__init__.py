"""File manager: streaming upload, VCF validation, checksums, storage and access-controlled download."""
