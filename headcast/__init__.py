"""headcast: predict a multimodal LLM's benchmark scores from its visual attention heads.

One import namespace over the repository's stage folders, mapped by the install (pyproject.toml):
`headcast.extract` is `extract/`, `headcast.predictor` is `predictor/`, `headcast.experiments` is
`experiments/`. This folder holds the command line (`headcast.cli`, `headcast.arguments`) and the
neutral core every stage imports and none owns: `errors`, `schema` (versions, query positions,
column names), `contract` (the extraction contract), `files` (atomic writes) and `tables` (the
feature table on disk). See docs/architecture.md.
"""
