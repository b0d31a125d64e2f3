"""The preference world: a generated default dataset whose correct labels are known.

    from rewardops.data.world import generate_world, verify_pair, world_split
    for pair in generate_world(1000, noise=0.1, seed=0):
        ...

Six families (`meta["family"]`): math, factual, instruction_following, code, safety and
style_trap (a math or factual question, so its task_category is "math" or "factual", with a
wrong, long, markdown-heavy rejected answer). Every pair carries the five attributes, the
truth in `truth_chosen_better` (False when the noise model flipped its label), and verifier
data in `meta["verifier"]`. See `noise` for the per-family x controversiality flip rates and
`split` for the held-out split.
"""

from rewardops.data.world.common import FAMILIES
from rewardops.data.world.facts import FACT_COUNT, RELATIONS
from rewardops.data.world.generator import SOURCE, generate_world, world_id, world_pair
from rewardops.data.world.noise import (
    CONTROVERSIALITY_MIX, CONTROVERSIALITY_NOISE_WEIGHT, DEFAULT_FLIP_RATES, FAMILY_NOISE_WEIGHT,
    FAMILY_WEIGHTS, family_flip_rates, flip_rate_table,
)
from rewardops.data.world.split import EVAL_FRACTION, world_split
from rewardops.data.world.verify import VerifierError, check_response, verify_pair

__all__ = [
    "CONTROVERSIALITY_MIX", "CONTROVERSIALITY_NOISE_WEIGHT", "DEFAULT_FLIP_RATES", "EVAL_FRACTION",
    "FACT_COUNT", "FAMILIES", "FAMILY_NOISE_WEIGHT", "FAMILY_WEIGHTS", "RELATIONS", "SOURCE",
    "VerifierError", "check_response", "family_flip_rates", "flip_rate_table", "generate_world",
    "verify_pair", "world_id", "world_pair", "world_split",
]
