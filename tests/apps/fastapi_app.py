"""A FastAPI app for tests/integration/test_fastapi.py: one POST route with a Pydantic body."""
from typing import List

from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI()


class Item(BaseModel):
    name: str = Field(..., min_length=1)
    price: float = Field(..., gt=0)
    tags: List[str] = []


@app.post("/items")
async def create_item(item: Item):
    return {"name": item.name, "price": item.price, "tags": item.tags,
            "price_with_tax": round(item.price * 1.2, 2)}
