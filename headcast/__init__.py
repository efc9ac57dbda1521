"""headcast: predict a multimodal LLM's benchmark scores from its visual attention heads.

One import namespace over the repository's stage folders, mapped by the install (pyproject.toml):
`headcast.extract` is `extract/`, `headcast.predictor` is `predictor/`, `headcast.experiments` is
`experiments/`. This folder holds only the command line (`headcast.cli`, `headcast.arguments`).
"""
