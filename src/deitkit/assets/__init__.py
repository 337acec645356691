"""The Azure ML asset tree (assets.yaml and the folders it indexes), read and checked.

One module per kind of thing checked, named after it:

- `manifest`: assets.yaml as typed values, with its model-asset and index checks;
- `sku_gate`: may a VM size run a purpose for a model asset (the manifest's allow-lists);
- `yaml_loading`: entity YAMLs read with azure-ai-ml's loaders, problems as `FILE: FIELD: why`;
- `commands`: command components' `deitkit` calls checked against the click CLI;
- `pipelines`: pipeline components' bindings checked against the components they run;
- `environments`: environment build contexts and pins;
- `endpoints`: endpoint and deployment YAMLs;
- `validate`: `validate_assets`, which runs all of the above over a repository.

Nothing is re-exported here: `deitkit.azure` needs only the manifest and the gate, and
importing those must not load the checks (click, packaging, azure-ai-ml's error parsing).
"""
