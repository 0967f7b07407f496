"""The staff admin (Django contrib admin). Every page is scoped to the apps the staff member
belongs to (profiles/admin/scoping.py); the profile change page is the customer profile."""

from profiles.admin import profile, registry  # noqa: F401  (registers the admins)
