"""mmflow's HTTP API (issue 12): settings, auth, the flask-openapi3 app and the ApiServer actor."""
