"""Call flows: the definition and its validation (schema.py), business hours (hours.py), TwiML
(twiml.py), the editor's preview (preview.py), saving versions (services.py), answering calls
(answer.py), and the portal pages (forms.py, views.py, urls.py)."""
