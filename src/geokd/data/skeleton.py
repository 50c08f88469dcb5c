"""Skeleton topologies: landmark names and bones.

UTD-MHAD uses the 20-joint Kinect v1 skeleton, in the row order of the dataset's
``Skeleton_joint_order.txt`` (0-based here). NTU RGB+D uses the 25-joint Kinect v2
skeleton (:data:`NTU_JOINTS`; a two-body store holds two of them, :func:`two_bodies`).
"""

from __future__ import annotations

UTD_MHAD_JOINTS: tuple[str, ...] = (
    "head",
    "shoulder_center",
    "spine",
    "hip_center",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "left_hand",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "right_hand",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_foot",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_foot",
)

# (parent, child) pairs, 0-based indices into UTD_MHAD_JOINTS; hip_center is the root.
UTD_MHAD_BONES: tuple[tuple[int, int], ...] = (
    (3, 2),  # hip_center -> spine
    (2, 1),  # spine -> shoulder_center
    (1, 0),  # shoulder_center -> head
    (1, 4),  # shoulder_center -> left_shoulder
    (4, 5),
    (5, 6),
    (6, 7),
    (1, 8),  # shoulder_center -> right_shoulder
    (8, 9),
    (9, 10),
    (10, 11),
    (3, 12),  # hip_center -> left_hip
    (12, 13),
    (13, 14),
    (14, 15),
    (3, 16),  # hip_center -> right_hip
    (16, 17),
    (17, 18),
    (18, 19),
)

# The 27 UTD-MHAD actions, label = action number - 1.
UTD_MHAD_ACTIONS: tuple[str, ...] = (
    "swipe_left",
    "swipe_right",
    "wave",
    "clap",
    "throw",
    "arm_cross",
    "basketball_shoot",
    "draw_x",
    "draw_circle_cw",
    "draw_circle_ccw",
    "draw_triangle",
    "bowling",
    "boxing",
    "baseball_swing",
    "tennis_swing",
    "arm_curl",
    "tennis_serve",
    "push",
    "knock",
    "catch",
    "pickup_throw",
    "jog",
    "walk",
    "sit_to_stand",
    "stand_to_sit",
    "lunge",
    "squat",
)

# MediaPipe hand: 21 landmarks, wrist first.
HAND_LANDMARKS: tuple[str, ...] = (
    "wrist",
    "thumb_cmc",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
    "index_mcp",
    "index_pip",
    "index_dip",
    "index_tip",
    "middle_mcp",
    "middle_pip",
    "middle_dip",
    "middle_tip",
    "ring_mcp",
    "ring_pip",
    "ring_dip",
    "ring_tip",
    "pinky_mcp",
    "pinky_pip",
    "pinky_dip",
    "pinky_tip",
)

HAND_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4),
    (0, 5), (5, 6), (6, 7), (7, 8),
    (0, 9), (9, 10), (10, 11), (11, 12),
    (0, 13), (13, 14), (14, 15), (15, 16),
    (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip

# NTU RGB+D (60 and 120): the 25-joint Kinect v2 skeleton, in the order of the ``.skeleton``
# files (0-based here; the dataset's documentation numbers them 1..25).
NTU_JOINTS: tuple[str, ...] = (
    "spine_base",
    "spine_mid",
    "neck",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "left_hand",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "right_hand",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_foot",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_foot",
    "spine_shoulder",
    "left_hand_tip",
    "left_thumb",
    "right_hand_tip",
    "right_thumb",
)

# (parent, child) pairs, 0-based indices into NTU_JOINTS; spine_base is the root. The Kinect
# v2 SDK's bone list: hand tips hang off the hands, thumbs off the wrists.
NTU_BONES: tuple[tuple[int, int], ...] = (
    (0, 1),  # spine_base -> spine_mid
    (1, 20),  # spine_mid -> spine_shoulder
    (20, 2),  # spine_shoulder -> neck
    (2, 3),  # neck -> head
    (20, 4),  # spine_shoulder -> left_shoulder
    (4, 5),
    (5, 6),
    (6, 7),
    (7, 21),  # left_hand -> left_hand_tip
    (6, 22),  # left_wrist -> left_thumb
    (20, 8),  # spine_shoulder -> right_shoulder
    (8, 9),
    (9, 10),
    (10, 11),
    (11, 23),  # right_hand -> right_hand_tip
    (10, 24),  # right_wrist -> right_thumb
    (0, 12),  # spine_base -> left_hip
    (12, 13),
    (13, 14),
    (14, 15),
    (0, 16),  # spine_base -> right_hip
    (16, 17),
    (17, 18),
    (18, 19),
)


def two_bodies(
    names: tuple[str, ...], bones: tuple[tuple[int, int], ...]
) -> tuple[list[str], list[tuple[int, int]]]:
    """Names and bones of two bodies of one skeleton side by side (``body1_*`` landmarks
    0..K-1, then ``body2_*`` K..2K-1): the layout of a two-body store."""
    k = len(names)
    return (
        [f"body{b}_{n}" for b in (1, 2) for n in names],
        [(p + k * b, c + k * b) for b in (0, 1) for p, c in bones],
    )


# The 120 NTU RGB+D 120 actions (the first 60 are NTU RGB+D's), label = action number - 1.
# Actions 50-60 and 106-120 are two-person interactions.
NTU_ACTIONS: tuple[str, ...] = (
    "drink_water", "eat_meal", "brush_teeth", "brush_hair", "drop", "pick_up", "throw",
    "sit_down", "stand_up", "clap", "read", "write", "tear_up_paper", "put_on_jacket",
    "take_off_jacket", "put_on_shoe", "take_off_shoe", "put_on_glasses", "take_off_glasses",
    "put_on_hat", "take_off_hat", "cheer_up", "hand_wave", "kick_something", "reach_into_pocket",
    "hop", "jump_up", "phone_call", "play_with_phone", "type_on_keyboard", "point_to_something",
    "take_selfie", "check_time", "rub_hands", "nod_head", "shake_head", "wipe_face", "salute",
    "put_palms_together", "cross_hands_in_front", "sneeze_cough", "stagger", "fall_down",
    "touch_head", "touch_chest", "touch_back", "touch_neck", "nausea_vomit", "fan_self",
    "punch_slap", "kick_other", "push_other", "pat_on_back", "point_at_other", "hug",
    "give_object", "touch_pocket", "handshake", "walk_towards", "walk_apart",
    "put_on_headphone", "take_off_headphone", "shoot_at_basket", "bounce_ball",
    "tennis_bat_swing", "juggle_table_tennis_balls", "hush", "flick_hair", "thumb_up",
    "thumb_down", "make_ok_sign", "make_victory_sign", "staple_book", "count_money",
    "cut_nails", "cut_paper", "snap_fingers", "open_bottle", "sniff", "squat_down",
    "toss_coin", "fold_paper", "ball_up_paper", "play_magic_cube", "apply_cream_on_face",
    "apply_cream_on_hand", "put_on_bag", "take_off_bag", "put_into_bag", "take_out_of_bag",
    "open_box", "move_heavy_objects", "shake_fist", "throw_up_cap", "hands_up", "cross_arms",
    "arm_circles", "arm_swings", "run_on_spot", "butt_kicks", "cross_toe_touch", "side_kick",
    "yawn", "stretch_oneself", "blow_nose", "hit_with_object", "wield_knife",
    "knock_over_other", "grab_other_stuff", "shoot_with_gun", "step_on_foot", "high_five",
    "cheers_and_drink", "carry_with_other", "take_photo_of_other", "follow_other",
    "whisper", "exchange_things", "support_somebody", "rock_paper_scissors",
)  # fmt: skip

# COCO's 17 keypoints (pyskl's 2D HRNet annotations), with the bones of COCO's skeleton.
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
COCO_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11),
    (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)  # fmt: skip
