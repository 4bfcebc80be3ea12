"""Neural and tree models (training needs the `train` extra)."""
