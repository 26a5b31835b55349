"""The record of processing activities (GDPR Art. 30) and the privacy-notice section, generated
from the configuration and the registry."""
