"""Skeleton topologies: landmark names and bones.

UTD-MHAD uses the 20-joint Kinect v1 skeleton, in the row order of the dataset's
``Skeleton_joint_order.txt`` (0-based here).
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
