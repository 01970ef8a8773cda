"""One OrderActor per order id and the stages of an order's life (see actors/order/actor.py)."""
