"""qa-engine: QA and compliance scoring for Chinese e-commerce customer-service conversations.

The core (this package) scores a `Conversation` with no Ray, HTTP or file-system
dependency; ``batch``, ``serve`` and the CLI wrap the one `Pipeline` it builds.
"""

__version__ = "0.1.0"
