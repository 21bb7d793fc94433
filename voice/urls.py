from django.urls import include, path

from .views import calls, placing, recordings

urlpatterns = [
    path("calls/", calls.call_list, name="call_list"),
    path("calls/export.csv", calls.call_export, name="call_export"),
    path("calls/place/", placing.call_place_view, name="call_place"),
    path("calls/test/", placing.call_test_view, name="call_test"),
    path("calls/<int:call_id>/", calls.call_detail, name="call_detail"),
    path("calls/<int:call_id>/status.json", calls.call_status, name="call_status"),
    path("calls/recordings/<int:recording_id>/audio/", recordings.recording_audio, name="recording_audio"),
    path("calls/recordings/<int:recording_id>/unmask/", recordings.recording_unmask, name="recording_unmask"),
    path("", include("voice.flows.urls")),
]
