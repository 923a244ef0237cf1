"""``vlmbench align``: the UnsafeConcepts study's alignment fine-tuning (response-reward RL, SFT and DPO) on TRL + PEFT.

Modules: :mod:`.split` (the study's train/test split, a document step), :mod:`.data` (training rows
and the split file), :mod:`.rewards` (rewards from judged responses), :mod:`.trainers` (TRL trainers,
LoRA, presets), :mod:`.card` (the model card), :mod:`.compare` (before/after evaluation),
:mod:`.command` (the command line) and :mod:`.plugin` (the hooks). torch, trl and peft are imported
only when the command trains, so registering the plugin costs nothing.
"""
