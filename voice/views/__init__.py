"""The voice pages: the call log and its export (`calls`), recordings (`recordings`) and
placing calls (`placing`)."""
